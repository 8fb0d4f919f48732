"""The WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

import sys

from webhooks import ConfigError, create_app

try:
    app = create_app()
except ConfigError as err:
    # One line per problem, naming the file, the key and the fix; no traceback.
    for problem in err.problems:
        print(f"recall-bridge: {problem}", file=sys.stderr)
    raise SystemExit(2) from None
