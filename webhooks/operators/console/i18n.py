"""The console's languages: English and Spanish, chosen by the operator (a cookie set by the
language links) or else by the browser's Accept-Language; and the labels of stored values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import request
from flask_babel import Domain, lazy_gettext

from ... import reasons

LANGUAGES = {"en": "English", "es": "Español"}  # each named in itself
DEFAULT = "en"
COOKIE = "console_lang"
DOMAIN = Domain(str(Path(__file__).with_name("translations")), domain="console")

STATUS_LABELS = {
    "queued": lazy_gettext("queued"),
    "sending": lazy_gettext("sending"),
    "delivered": lazy_gettext("delivered"),
    "failed": lazy_gettext("failed"),
    "superseded": lazy_gettext("superseded"),
    "expired": lazy_gettext("expired"),
    "invalid": lazy_gettext("invalid"),
    "ignored": lazy_gettext("ignored"),
    "cancelled": lazy_gettext("cancelled"),
    "test": lazy_gettext("test"),
}
ACTION_LABELS = {
    "retry": lazy_gettext("retry"),
    "cancel": lazy_gettext("cancel"),
    "reveal": lazy_gettext("reveal phone"),
    "bulk-retry": lazy_gettext("bulk retry"),
    "retry-writebacks": lazy_gettext("retry write-backs"),
    "purge": lazy_gettext("purge finished events"),
    "sign-out": lazy_gettext("sign out"),
}
ROLE_LABELS = {"admin": lazy_gettext("administrator"), "viewer": lazy_gettext("viewer")}
ACTOR_LABELS = {**ROLE_LABELS, "cli": lazy_gettext("command line")}  # who, in the audit log
OUTCOME_LABELS = {  # an attempt's outcome (store/events.py Attempt, and an operator's requeue)
    "delivered": lazy_gettext("delivered"),
    "retry": lazy_gettext("retry later"),
    "held": lazy_gettext("token held"),
    "failed": lazy_gettext("failed"),
    "expired": lazy_gettext("expired"),
    "requeued": lazy_gettext("re-queued"),
    "refused": lazy_gettext("refused"),
    "superseded": lazy_gettext("superseded"),
    "called": lazy_gettext("called"),
    "no_result": lazy_gettext("no result"),
    "added": lazy_gettext("added to the campaign"),
}
WRITEBACK_LABELS = {  # a write-back's own status (store/writebacks.py)
    "queued": lazy_gettext("waiting"),
    "sending": lazy_gettext("sending"),
    "done": lazy_gettext("written"),
    "failed": lazy_gettext("failed"),
}
MOMENT_LABELS = {  # what a write-back tells the CRM
    "scheduled": lazy_gettext("scheduled"),
    "failed": lazy_gettext("failed"),
    "expired": lazy_gettext("expired"),
    "called": lazy_gettext("called"),
}
RESULT_STATE_LABELS = {  # where a delivered recall stands with its call's result
    "awaiting": lazy_gettext("awaiting result"),
    "missing": lazy_gettext("no result reported"),
    "replaced": lazy_gettext("replaced by a newer recall"),
}
RESULT_FILTERS = {  # the events filter's choices: wolkvox's words, then where a result stands
    **{word: word for word in reasons.RESULT_WORDS},
    "awaiting": lazy_gettext("awaiting result"),
    "missing": lazy_gettext("no result reported"),
    "none": lazy_gettext("no result"),
}


def call_result(row: Mapping[str, Any]) -> str:
    """How the event's call went, in this page's words with wolkvox's own beside them
    ("contestó (ANSWER)"), or where its result stands; "" when it is not asked about."""
    word = row.get("call_result")
    if word:
        kind = reasons.RESULT_WORDS.get(str(word).upper())
        return f"{kind().text(current())} ({word})" if kind else str(word)
    return label(RESULT_STATE_LABELS, row.get("result_state")) if row.get(
        "result_state") in RESULT_STATE_LABELS else ""


def label(table: dict[str, object], value: str | None) -> str:
    """The translated label of a stored value, or the value itself when it has none."""
    return str(table.get(value or "", value or ""))


def reason(found: Mapping[str, Any] | str | object | None) -> str:
    """A reason in this page's language: a stored row's (an event, an attempt, a hold) from its
    code and parameters, or its stored text when it has no code (written before codes); a
    reason just judged (the playground's) from its own."""
    if isinstance(found, str):
        return reasons.render(reasons.code_of(found), reasons.params_of(found), found,
                              current())
    return reasons.of_row(found, current()) if found else ""


def current() -> str:
    """The language of this request: the operator's choice, else the browser's, else English."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT


def select_locale() -> str | None:
    """Flask-Babel's locale selector: the console's language on console pages."""
    return current() if request.blueprint == "console" else None


def chained(previous: Callable[[], str | None] | None) -> Callable[[], str | None]:
    """When another part of the app set up Flask-Babel first: the console decides on its own
    pages and leaves the others to the selector that was there."""

    def select() -> str | None:
        if request.blueprint == "console":
            return current()
        return previous() if previous else None

    return select
