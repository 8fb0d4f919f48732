"""A source's declared write-backs (`writeback:` in its mapping): what the bridge tells the
CRM of each callback, and the request that says it. outbound/writeback.py sends it.

Each entry names its moments (`on:` scheduled, failed, expired, called) and its request: a
method, a URL, headers and a JSON (or form) body whose strings are Jinja templates, rendered
in Jinja's sandbox with `context` (docs/crms.md lists it). A string that is one expression
alone (`"{{ event.objectId | int }}"`) keeps the value's type, so a CRM that wants a number
gets one. Values rendered into the URL are percent-encoded, and its scheme and host must be
written out, so no value can send a request elsewhere. A template that fails at run time
fails that write-back with the reason, never the event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, get_timezone, get_timezone_location
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from .. import reasons
from ..lifecycle import Moment
from ..recall import mask_phone, mask_phones_in

MOMENTS = tuple(moment.value for moment in Moment)
LANGUAGES = ("es", "en")
ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.S)
SECRET_HEADER = re.compile(r"auth|token|key|secret|signature|cookie", re.I)


class WritebackTemplateError(ValueError):
    """A template that cannot be compiled (at start) or rendered (at send time)."""


def _environment(finalize: Any = None) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                               keep_trailing_newline=True,
                               **({"finalize": finalize} if finalize else {}))
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


TEXT = _environment()
URL = _environment(finalize=lambda value: quote(str(value), safe=""))  # one path segment


@dataclass(frozen=True)
class Template:
    """One templated value: text rendered, or (one expression alone) a value of its type."""

    source: str
    compiled: Any = field(repr=False, compare=False)
    native: bool

    @classmethod
    def of(cls, value: str, env: SandboxedEnvironment = TEXT) -> Template:
        alone = ONE_EXPRESSION.match(value) if env is TEXT else None
        try:
            if alone:
                return cls(value, env.compile_expression(alone.group("expr"),
                                                         undefined_to_none=False), True)
            return cls(value, env.from_string(value), False)
        except TemplateError as err:
            raise WritebackTemplateError(f"{value!r}: {_first_line(err)}") from None

    def render(self, context: Mapping[str, Any]) -> Any:
        try:
            if self.native:
                value = self.compiled(**context)
                if isinstance(value, StrictUndefined):
                    str(value)  # raises UndefinedError, naming what is missing
                return value
            return self.compiled.render(**context)
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as err:
            raise WritebackTemplateError(f"{self.source!r}: {_first_line(err)}") from None


def compile_value(value: Any) -> Any:
    """A body's value with each string compiled (dicts and lists kept, numbers as they are)."""
    if isinstance(value, str):
        return Template.of(value) if "{{" in value or "{%" in value else value
    if isinstance(value, dict):
        return {str(k): compile_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v) for v in value]
    return value


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


@dataclass(frozen=True)
class Request:
    """A write-back as it is sent; `shown_url` and `shown_headers` hide its secrets."""

    method: str
    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    json: Any = None
    form: dict[str, str] | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def shown(self, secret_url: bool) -> dict[str, Any]:
        """The request as `mappings try` prints it: credentials masked."""
        parts = urlsplit(self.url)
        url = f"{parts.scheme}://{parts.netloc}/..." if secret_url else self.url
        headers = {name: ("***" if SECRET_HEADER.search(name) else value)
                   for name, value in self.headers.items()}
        body = {"json": self.json} if self.form is None else {"form": self.form}
        return {"method": self.method, "url": url, "headers": headers, **body}


@dataclass(frozen=True)
class OAuth2:
    """A write-back's OAuth 2 credentials (outbound/oauth.py fetches and caches the token)."""

    token_url: str
    grant: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    header: str = "Authorization"
    prefix: str = "Bearer"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.token_url, self.grant, self.client_id)


@dataclass(frozen=True)
class Writeback:
    """One `writeback:` entry, compiled; `off` says why it is not sent (its credentials are
    not set), "" when it is on."""

    name: str
    moments: tuple[str, ...]
    method: str
    url: Template = field(repr=False)
    headers: dict[str, Template | str] = field(repr=False)
    body: Any = field(repr=False)
    form: bool
    language: str
    secret_url: bool = False  # the URL is a credential (Bitrix24's inbound webhook)
    off: str = ""
    oauth2: OAuth2 | None = None

    @property
    def host(self) -> str:
        host = urlsplit(self.url.source).hostname or "the CRM"
        return "(its URL is not set)" if host == "unset.invalid" else host

    def request(self, context: Mapping[str, Any]) -> Request:
        """The request for one moment; WritebackTemplateError when a template fails."""
        url = self.url.render(context)
        if urlsplit(url).netloc != urlsplit(self.url.source).netloc:
            raise WritebackTemplateError(f"url renders to another host ({urlsplit(url).netloc})")
        headers = {name: str(render_value(value, context)) for name, value in self.headers.items()}
        body = render_value(self.body, context)
        if self.form:
            return Request(self.method, url, headers,
                           form={k: "" if v is None else str(v) for k, v in body.items()})
        return Request(self.method, url, headers, json=body)


def compile_writeback(entry: Mapping[str, Any], index: int, off: str = "") -> Writeback:
    """An entry the schema accepted -> a Writeback; WritebackTemplateError names the key."""
    url = entry["url"]
    head = url.split("{", 1)[0]
    parts = urlsplit(head)
    if parts.scheme not in ("http", "https") or not parts.netloc or "/" not in head[
            len(parts.scheme) + 3:]:
        raise WritebackTemplateError("url: its scheme and host must be written out, up to the "
                                     "first /, before any {{ }} (a value cannot pick the host)")
    where = "json" if entry.get("json") is not None else "form"
    body = entry.get("json") if entry.get("json") is not None else entry.get("form")
    try:
        compiled_url = Template.of(url, URL)
    except WritebackTemplateError as err:
        raise WritebackTemplateError(f"url: {err}") from None
    headers: dict[str, Template | str] = {}
    for name, value in (entry.get("headers") or {}).items():
        try:
            headers[name] = compile_value(str(value))
        except WritebackTemplateError as err:
            raise WritebackTemplateError(f"headers.{name}: {err}") from None
    try:
        compiled_body = compile_value(body)
    except WritebackTemplateError as err:
        raise WritebackTemplateError(f"{where}: {err}") from None
    moments = entry["on"] if isinstance(entry["on"], list) else [entry["on"]]
    return Writeback(name=entry.get("name") or f"writeback-{index + 1}",
                     moments=tuple(dict.fromkeys(moments)), method=entry["method"].upper(),
                     url=compiled_url, headers=headers, body=compiled_body,
                     form=where == "form", language=entry["language"],
                     secret_url=entry["secret_url"], off=off,
                     oauth2=OAuth2(**entry["oauth2"]) if entry.get("oauth2") else None)


# --- the context a template reads -----------------------------------------------------------
def context(moment: str, facts: Mapping[str, Any], raw: Any, source: str, event_id: int,
            timezone: str, language: str) -> dict[str, Any]:
    """What a write-back's templates read (documented in docs/crms.md)."""
    recall = dict(facts.get("recall") or {})
    phone = recall.get("recall_telephone", "")
    if phone:
        recall["recall_telephone"] = mask_phone(phone)
    scheduled = facts.get("scheduled_for")
    called = facts.get("called_at")
    result = facts.get("call_result") or ""
    reason = reasons.of_row(facts, language)
    values = {
        "moment": moment, "source": source, "event_id": event_id, "event": raw,
        "language": language, "recall": recall, "phone": phone,
        "at": _time(facts.get("at"), timezone, language),
        "when": _time(scheduled, timezone, language),
        "called": _time(called, timezone, language),
        "result": result, "result_words": reasons.shown(reasons.result_word(result), language)
        if result else "",
        "reason": mask_phones_in(reason), "moved": moved_words(facts, language),
        "other_phone": bool(facts.get("other_phone")),
    }
    values["note"] = note(values, language)
    values["title"] = title(values, language)
    return values


def _time(epoch: float | None, timezone: str, language: str) -> dict[str, Any] | None:
    """A moment as templates read it: `.local` "2027-01-12 07:10", `.words` "martes 12 de
    enero, 07:10", `.zone`, `.zone_words` "hora de Bogotá", `.iso` (UTC), `.epoch_ms`,
    `.date`, `.time`."""
    if epoch is None:
        return None
    local = datetime.fromtimestamp(float(epoch), ZoneInfo(timezone))
    pattern = "EEEE d 'de' MMMM, HH:mm" if language == "es" else "EEEE, MMMM d, HH:mm"
    city = get_timezone_location(get_timezone(timezone), locale=language, return_city=True)
    return {"local": local.strftime("%Y-%m-%d %H:%M"), "date": local.strftime("%Y-%m-%d"),
            "time": local.strftime("%H:%M"), "zone": timezone,
            "words": format_datetime(local, pattern, locale=language),
            "zone_words": f"hora de {city}" if language == "es" else f"{city} time",
            "iso": datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "epoch_ms": int(float(epoch) * 1000)}


MOVED_WORDS = {"es": {"closed": "se movió por el horario de llamadas{hours}",
                      "ley": " de la Ley 2300", "other": "se movió: {why}"},
               "en": {"closed": "moved by the calling hours{hours}",
                      "ley": " of Ley 2300", "other": "moved: {why}"}}


def moved_words(facts: Mapping[str, Any], language: str) -> str:
    """Why the recall's date moved, as a salesperson reads it; "" when it did not move."""
    if facts.get("reason_code") != "delivered_moved":
        return ""
    moved = (reasons.params_from(facts.get("reason_params")) or {}).get("note")
    if not isinstance(moved, dict):
        return ""
    words = MOVED_WORDS[language]
    params = moved.get("params") or {}
    if str(params.get("asked", ""))[:12] == str(params.get("moved", "?"))[:12]:
        return ""  # moved by seconds: the note's minute is the one asked
    causes = params.get("why") or []
    causes = causes if isinstance(causes, list) else [causes]
    for cause in causes:
        if isinstance(cause, dict) and cause.get("code") == "moved_closed":
            hours = str((cause.get("params") or {}).get("hours") or "")
            label = words["ley"] if "2300" in hours else f" ({hours})" if hours else ""
            return words["closed"].format(hours=label)
    why = "; ".join(reasons.shown(cause, language) for cause in causes)
    return words["other"].format(why=why) if why else ""


NOTES = {
    "es": {Moment.SCHEDULED: "Llamada programada para el {when} ({zone})",
           Moment.CALLED: "Llamada del {called} ({zone}): {words} ({result})",
           Moment.FAILED: "No se pudo programar la llamada: {reason}",
           Moment.EXPIRED: "La llamada venció sin programarse: {reason}",
           "other_phone": "; se llamó a otro teléfono que el de la rellamada"},
    "en": {Moment.SCHEDULED: "Call scheduled for {when} ({zone})",
           Moment.CALLED: "Call on {called} ({zone}): {words} ({result})",
           Moment.FAILED: "The call could not be scheduled: {reason}",
           Moment.EXPIRED: "The call expired before it could be scheduled: {reason}",
           "other_phone": "; another phone than the recall's was called"},
}


TITLES = {
    "es": {Moment.SCHEDULED: "Llamada programada", Moment.CALLED: "Llamada: {words}",
           Moment.FAILED: "Llamada no programada", Moment.EXPIRED: "Llamada vencida"},
    "en": {Moment.SCHEDULED: "Call scheduled", Moment.CALLED: "Call: {words}",
           Moment.FAILED: "Call not scheduled", Moment.EXPIRED: "Call expired"},
}


def title(values: Mapping[str, Any], language: str) -> str:
    """The moment in two or three words, for a task's subject or a note's title."""
    return TITLES[language][Moment(values["moment"])].format(words=values["result_words"])


def note(values: Mapping[str, Any], language: str) -> str:
    """The moment in one short sentence of `language`, for a CRM note."""
    texts = NOTES[language]
    moment = values["moment"]
    when, called = values["when"] or {}, values["called"] or {}
    if moment == Moment.SCHEDULED:
        text = texts[Moment.SCHEDULED].format(when=when.get("words", "?"),
                                              zone=when.get("zone_words", ""))
        return text + (f"; {values['moved']}" if values["moved"] else "") + "."
    if moment == Moment.CALLED:
        text = texts[Moment.CALLED].format(called=called.get("words", "?"),
                                           zone=called.get("zone_words", ""),
                                           words=values["result_words"],
                                           result=values["result"])
        return text + (texts["other_phone"] if values["other_phone"] else "") + "."
    return texts[Moment(moment)].format(reason=values["reason"]).rstrip(".") + "."


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


SAMPLE_REASONS = {Moment.FAILED: reasons.WRITEBACK_SAMPLE_FAILED,
                  Moment.EXPIRED: reasons.WRITEBACK_SAMPLE_EXPIRED}


def sample_facts(moment: str, recall: Mapping[str, Any], scheduled_for: float | None,
                 now: float) -> dict[str, Any]:
    """The facts of `moment` for a preview (`mappings try`): the recall as it would be sent,
    and for a call, ANSWER a minute after its date."""
    facts: dict[str, Any] = {"at": now, "recall": dict(recall), "scheduled_for": scheduled_for}
    kind = SAMPLE_REASONS.get(Moment(moment))
    if kind is not None:
        reason = kind()
        facts.update(reason=str(reason), reason_code=reason.code,
                     reason_params=reasons.params_json(reason))
    if moment == Moment.CALLED:
        facts.update(call_result="ANSWER", called_at=(scheduled_for or now) + 60)
    return facts
