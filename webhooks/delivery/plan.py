"""When a recall would be sent now: the one place the time rules' inputs are assembled.

The worker (before it sends) and `mappings try` / the playground / the API (a preview) call
`plan_for`, so a preview tells what the worker would send: the same minimum lead, expiry,
calling hours and contact caps, the caps counted over the lead's recalls already due in the
store (every process's).
"""

from __future__ import annotations

from ..mapping.source import Source
from ..settings import Settings
from ..store import Store
from ..timing import rules as timerules

CAPS_WINDOW = 8 * 86400.0  # a week's cap looks back at most a week and a day


def plan_for(source: Source, store: Store, settings: Settings, recall: dict[str, str],
             now: float) -> timerules.Plan:
    """When to send `recall` from `source` at `now`: the time rules, the source's calling
    hours, and its contact caps counted over the lead's recalls already due."""
    dialled: list[float] = []
    if source.caps is not None:
        dialled = store.dialled(source.target.key, recall["campaign_id"],
                                recall["customer_id"], now - CAPS_WINDOW, now)
    return timerules.schedule(recall, source.target.timezone, now, settings.wolkvox_min_lead,
                              settings.expire_after, source.hours, source.caps, dialled)
