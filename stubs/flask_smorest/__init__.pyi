# flask-smorest ships neither stubs nor a py.typed marker. This names the one thing the
# bridge's types need from it, `abort`, which never returns (webargs' own, re-exported as
# flask-smorest does at run time); every other name stays untyped.
from typing import Any

from webargs.flaskparser import abort as abort

def __getattr__(name: str) -> Any: ...
