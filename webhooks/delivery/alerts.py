"""Operators' alerts: tell the operators' chat (ALERT_WEBHOOK_URL: a Slack, Microsoft Teams
or Google Chat incoming webhook, or any URL taking `{"text": ...}`) when something needs them.

The conditions, judged by the write-back threads at most every CHECK_EVERY seconds per
process: a wolkvox token held (a bad token, the quota used up), a source's lookup or
write-back credentials held, the spool in use (the database cannot be written), or
ALERT_FAILURES callbacks failed within ALERT_WINDOW. Each condition is a row (store/alerts.py)
judged in one transaction, so across processes a condition is told once when it starts (at
most once per ALERT_QUIET) and once when it clears. Each message is a write-back of no event,
stored, sent, retried and held as the CRMs' ones are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .. import reasons
from ..mapping.source import Source
from ..mapping.writeback import Request
from ..settings import ALERT_QUIET, ALERT_WINDOW, Settings
from ..store import Store
from ..store.alerts import ALERTS, CLEARED, Told
from ..store.limits import HoldKind, writeback_key

CHECK_EVERY = 5.0  # seconds between two looks of a process at the conditions


class Alerts:
    """One process's judge of the alert conditions, and the request of each message."""

    def __init__(self, store: Store, settings: Settings, sources: Mapping[str, Source],
                 spool_depth: Callable[[], int] | None = None):
        self.store, self.settings, self.spool_depth = store, settings, spool_depth
        self.sources = sources
        self._next = 0.0

    @property
    def on(self) -> bool:
        return bool(self.settings.alert_webhook_url)

    def check(self, now: float, force: bool = False) -> list[Told]:
        """Judge the conditions when their time has come (or `force`); the messages queued."""
        if not self.on or (now < self._next and not force):
            return []
        self._next = now + CHECK_EVERY
        return self.store.judge_alerts(self.standing(now), now, ALERT_QUIET)

    def standing(self, now: float) -> dict[str, str]:
        """Each condition that stands now, by key, with what it is in the alerts' language."""
        language = self.settings.alert_language
        standing: dict[str, str] = {}
        for key, hold in self.store.holds().items():
            if key == writeback_key(ALERTS):
                continue  # the alerts' own channel: nothing can be told through it
            reason = reasons.of_row(hold, language)
            source = key.partition(":")[2]
            if hold["kind"] == HoldKind.LOOKUP:
                what = reasons.ALERT_LOOKUP_HELD(source=source, reason=reason)
            elif hold["kind"] == HoldKind.WRITEBACK:
                what = reasons.ALERT_WRITEBACK_HELD(source=source, reason=reason)
            else:
                what = reasons.ALERT_TOKEN_HELD(token=key, sources=self._users(key),
                                                reason=reason)
            standing[f"hold:{key}"] = what.text(language)
        requests = self.spool_depth() if self.spool_depth is not None else 0
        if requests:
            standing["spool"] = reasons.ALERT_SPOOL(requests=requests).text(language)
        limit = self.settings.alert_failures
        if limit:
            failed = self.store.failed_since(now - ALERT_WINDOW)
            if failed >= limit:
                standing["failures"] = reasons.ALERT_FAILURES(
                    failed=failed, minutes=f"{ALERT_WINDOW / 60:g}", limit=limit).text(language)
        return standing

    def _users(self, token_key: str) -> str:
        return ", ".join(sorted(name for name, source in self.sources.items()
                                if source.target.key == token_key)) or "-"

    def request(self, facts: dict[str, Any]) -> Request:
        """The message's request: `{"text": ...}`, in the alerts' language."""
        kind = reasons.ALERT_CLEARED if facts.get("state") == CLEARED else reasons.ALERT_RAISED
        text = kind(what=str(facts.get("text", ""))).text(self.settings.alert_language)
        return Request("POST", self.settings.alert_webhook_url,
                       {"Content-Type": "application/json"}, json={"text": text})
