"""Reasons in the operator's language: each reason the bridge records has a code, its
parameters, and a text in English and in Spanish.

A `Reason` is a `str` (its English text), so every place that stores, logs or compares a reason
keeps working; the store keeps its code and parameters beside the text, and a page renders it
in its own language with `render`. A row written before codes existed has the text alone,
which is shown as it is.

    DELIVERED = Kind("delivered", "wolkvox accepted the recall", "wolkvox aceptó la rellamada")
    reason = DELIVERED()                  # "wolkvox accepted the recall", .code "delivered"
    render(reason.code, reason.params, reason, "es")   # "wolkvox aceptó la rellamada"
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LANGUAGES = ("en", "es")
CATALOG: dict[str, Kind] = {}  # code -> its kind, filled as kinds are declared


class Reason(str):
    """A reason's English text, carrying its code and parameters. A parameter may itself be a
    Reason (the cause a retry or a hold names), or a list of them (joined with "; "): each is
    rendered in the page's language too."""

    code: str
    params: dict[str, Any]

    def __new__(cls, kind: Kind, params: Mapping[str, Any]) -> Reason:
        self = super().__new__(cls, _fill(kind.en, params, "en"))
        self.code = kind.code
        self.params = dict(params)
        return self

    def text(self, language: str) -> str:
        return render(self.code, params_of(self), str(self), language)


@dataclass(frozen=True)
class Kind:
    """One kind of reason: its code and its text in each language, with `{name}` for each
    parameter (the same names in both)."""

    code: str
    en: str
    es: str

    def __post_init__(self) -> None:
        if self.code in CATALOG:
            raise ValueError(f"reason code {self.code!r} declared twice")
        if names(self.en) != names(self.es):
            raise ValueError(f"reason {self.code!r}: the Spanish text names other parameters")
        CATALOG[self.code] = self

    def __call__(self, **params: Any) -> Reason:
        return Reason(self, params)


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def names(template: str) -> set[str]:
    """The parameters a text names."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(code: str | None, params: Mapping[str, Any] | None, text: str,
           language: str) -> str:
    """A stored reason in `language`: from its code and parameters when it has a code this
    version knows, else its stored text as it is."""
    kind = CATALOG.get(code or "")
    if kind is None:
        return text
    return _fill(kind.es if language == "es" else kind.en, params or {}, language)


def _fill(template: str, params: Mapping[str, Any], language: str) -> str:
    return template.format_map(_Params({k: _shown(v, language) for k, v in params.items()}))


def _shown(value: Any, language: str) -> Any:
    """A parameter as a page shows it: a nested reason (live or as stored) in `language`."""
    if isinstance(value, Reason):
        return value.text(language)
    if isinstance(value, dict) and "code" in value and "text" in value:
        return render(value["code"], value.get("params"), value["text"], language)
    if isinstance(value, list):
        return "; ".join(str(_shown(item, language)) for item in value)
    return value


def shown(value: Any, language: str) -> str:
    """One stored parameter in `language`: a nested reason rendered, anything else as text."""
    return str(_shown(value, language))


def code_of(reason: str | None) -> str | None:
    return reason.code if isinstance(reason, Reason) else None


def params_of(reason: str | None) -> dict[str, Any] | None:
    """The parameters as stored (JSON's types): a nested reason becomes {code, params, text}."""
    if not isinstance(reason, Reason):
        return None
    return {key: _stored(value) for key, value in reason.params.items()}


def _stored(value: Any) -> Any:
    if isinstance(value, Reason):
        return {"code": value.code, "params": params_of(value), "text": str(value)}
    if isinstance(value, (list, tuple)):
        return [_stored(item) for item in value]
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def params_json(reason: str | None) -> str | None:
    """The parameters as the store's text column keeps them; None for a reason without code."""
    params = params_of(reason)
    return None if params is None else json.dumps(params, ensure_ascii=False)


def params_from(stored: str | None) -> dict[str, Any] | None:
    """A stored reason_params column read back; None when absent or unreadable."""
    if not stored:
        return None
    try:
        found = json.loads(stored)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def of_row(row: Mapping[str, Any] | object, language: str) -> str:
    """A stored row's reason (an event, an attempt, a hold; a mapping, or an object with the
    same attributes) in `language`. Its parameters as stored (JSON text) or read back."""
    def get(key: str) -> Any:
        return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)

    params = get("reason_params")
    if isinstance(params, str):
        params = params_from(params)
    return render(get("reason_code"), params, get("reason") or "", language)


def of_error(err: BaseException) -> str:
    """The reason an exception was raised with: `str(err)` would drop its code."""
    first = err.args[0] if err.args else None
    return first if isinstance(first, Reason) else str(err)


# --- the catalog: every reason the bridge writes, by where it arises -------------------------
# Parameters keep what others said as they said it (wolkvox's message, a CRM's answer, a
# mapping error, an operator's words): only the bridge's own words are translated.

# intake: judging a CRM's event on arrival (intake/judge.py, mapping/source.py)
INVALID_EVENT_ID = Kind("invalid_event_id", "invalid: `event_id` failed: {error}",
                        "inválido: falló `event_id`: {error}")
INVALID_UNSTORABLE = Kind(
    "invalid_unstorable",
    "invalid: {paths}: text with a NUL character or an unpaired surrogate, which cannot be "
    "stored (replaced by U+FFFD); fix the sender's data",
    "inválido: {paths}: texto con un carácter NUL o un sustituto sin pareja, que no se puede "
    "guardar (reemplazado por U+FFFD); corrija los datos de quien lo envía")
INVALID_WHEN = Kind("invalid_when", "invalid: `when` failed: {error}",
                    "inválido: falló `when`: {error}")
INVALID = Kind("invalid", "invalid: {error}", "inválido: {error}")
IGNORED_WHEN = Kind("ignored_when", "ignored: the mapping's `when` is false ({expression})",
                    "ignorado: el `when` del mapeo es falso ({expression})")
IGNORED_WHEN_MISSING = Kind(
    "ignored_when_missing",
    "ignored: the mapping's `when` is false ({expression}); missing in the event: {missing}",
    "ignorado: el `when` del mapeo es falso ({expression}); faltan en el evento: {missing}")
WAITING_LOOKUP = Kind("waiting_lookup", "waiting for the CRM lookup",
                      "esperando la consulta al CRM")
TEST_WOULD_BE = Kind("test_would_be", "test: would be {status}", "prueba: quedaría {status}")
TEST_WOULD_BE_BECAUSE = Kind("test_would_be_because", "test: would be {status}: {reason}",
                             "prueba: quedaría {status}: {reason}")

# delivery: the worker's decision for one event (delivery/worker.py)
DELIVERED = Kind("delivered", "delivered: {said}", "entregado: {said}")
DELIVERED_MOVED = Kind("delivered_moved", "delivered, {note}; wolkvox: {said}",
                       "entregado, {note}; wolkvox: {said}")
FAILED_UNEXPECTED = Kind("failed_unexpected",
                         "failed: unexpected {error} (see the worker log)",
                         "fallido: {error} inesperado (vea el registro del worker)")
FAILED_MAX_AGE = Kind("failed_max_age",
                      "failed after {attempts} attempts over the maximum age: {reason}",
                      "fallido tras {attempts} intentos, pasada la edad máxima: {reason}")
RETRY_IN = Kind("retry_in", "retry in {delay} s: {reason}", "reintento en {delay} s: {reason}")
RETRY_SOON = Kind("retry_soon", "retry soon: {reason}", "reintento en breve: {reason}")
SUPERSEDED_LATER_CHANGE = Kind(
    "superseded_later_change",
    "superseded: event {event} of the same lead reports a later change ({later} UTC against "
    "{this} UTC)",
    "reemplazado: el evento {event} del mismo contacto trae un cambio posterior ({later} UTC "
    "frente a {this} UTC)")
SUPERSEDED_REPEAT = Kind(
    "superseded_repeat",
    "superseded: duplicate of event {event}, still ahead in wolkvox ({scheduled}): same "
    "customer, phone and asked date; not sent again",
    "reemplazado: duplicado del evento {event}, aún pendiente en wolkvox ({scheduled}): mismo "
    "cliente, teléfono y fecha pedida; no se envía de nuevo")

# holds: a wolkvox token or a CRM's credentials not used for a while (delivery/worker.py)
HELD = Kind("held", "held: {reason}", "en espera: {reason}")
HELD_PROBING = Kind("held_probing", "held: {reason}; probing every {interval} s",
                    "en espera: {reason}; se prueba cada {interval} s")
HELD_QUOTA_USED = Kind(
    "held_quota_used",
    "held: daily quota of {limit} calls used up; waits for {until} {zone}",
    "en espera: cupo diario de {limit} llamadas agotado; espera hasta {until} {zone}")

# wolkvox answers (outbound/wolkvox.py, outbound/deadline.py): wolkvox's msg is a parameter
WOLKVOX_CUT_SHORT = Kind("wolkvox_cut_short", "cut short: {why}", "interrumpida: {why}")
WOLKVOX_TIMEOUT = Kind("wolkvox_timeout", "timeout: {error}", "tiempo agotado: {error}")
WOLKVOX_TRANSPORT = Kind("wolkvox_transport", "transport error: {error}",
                         "error de conexión: {error}")
WOLKVOX_NO_202 = Kind("wolkvox_no_202", "HTTP {status} without code 202 in the body",
                      "HTTP {status} sin el código 202 en la respuesta")
WOLKVOX_BUSY = Kind("wolkvox_busy", "HTTP {status}: {msg}", "HTTP {status} (ocupado): {msg}")
WOLKVOX_BUSY_AFTER = Kind("wolkvox_busy_after", "HTTP {status}: {msg}; Retry-After {after} s",
                          "HTTP {status} (ocupado): {msg}; reintentar tras {after} s")
WOLKVOX_NOT_JSON = Kind("wolkvox_not_json", "HTTP {status} with a body that is not wolkvox JSON",
                        "HTTP {status} con una respuesta que no es JSON de wolkvox")
WOLKVOX_REFUSED = Kind("wolkvox_refused", "wolkvox refused the recall: {msg}",
                       "wolkvox rechazó la rellamada: {msg}")
WOLKVOX_TOKEN_REJECTED = Kind("wolkvox_token_rejected", "token rejected: {msg}",
                              "token rechazado: {msg}")
WOLKVOX_CONCURRENCY = Kind("wolkvox_concurrency", "refused for concurrency: {msg}",
                           "rechazada por concurrencia: {msg}")
WOLKVOX_QUOTA = Kind("wolkvox_quota", "daily quota used up: {msg}", "cupo diario agotado: {msg}")
WOLKVOX_HTTP = Kind("wolkvox_http", "HTTP {status}: {msg}", "HTTP {status} de wolkvox: {msg}")
CALL_DEADLINE = Kind("call_deadline",
                     "no complete answer within the call's deadline of {seconds} s",
                     "sin respuesta completa dentro del plazo de la llamada, {seconds} s")

# lookups: the CRM's answer to the worker's GET (outbound/lookups.py)
LOOKUP_OBJECT_AT = Kind("lookup_object_at", "the object at {host}", "el objeto en {host}")
LOOKUP_NO_ID = Kind("lookup_no_id",
                    "lookup: the event has no object id where the lookup's id looks",
                    "consulta: el evento no trae un id de objeto donde la consulta lo busca")
LOOKUP_BAD_ID = Kind(
    "lookup_bad_id",
    "lookup: object id {shown} is not an id (letters, digits, . _ : @ -, at most 128 "
    "characters)",
    "consulta: el id de objeto {shown} no es un id (letras, dígitos, . _ : @ -, máximo 128 "
    "caracteres)")
LOOKUP_CUT_SHORT = Kind("lookup_cut_short", "lookup: cut short: {why}",
                        "consulta: interrumpida: {why}")
LOOKUP_TRANSPORT = Kind("lookup_transport", "lookup: transport error: {error}",
                        "consulta: error de conexión: {error}")
LOOKUP_NOT_FOUND = Kind("lookup_not_found", "lookup: {what} {id} not found (HTTP {status})",
                        "consulta: {what} {id} no existe (HTTP {status})")
LOOKUP_NOT_FOUND_SAID = Kind("lookup_not_found_said",
                             "lookup: {what} {id} not found (HTTP {status}): {said}",
                             "consulta: {what} {id} no existe (HTTP {status}): {said}")
LOOKUP_REFUSED = Kind(
    "lookup_refused",
    "lookup: {host} refused the credentials for {what} (HTTP {status}); check the token in "
    "the mapping's lookup and its scopes",
    "consulta: {host} rechazó las credenciales para {what} (HTTP {status}); revise el token "
    "de la consulta del mapeo y sus permisos")
RATE_TURN = Kind("rate_turn",
                 "rate: {source}'s CRM takes {rate} requests per second (its mapping's rate:); "
                 "the next turn is in {wait} s",
                 "ritmo: el CRM de {source} admite {rate} solicitudes por segundo (rate: de su "
                 "mapeo); el próximo turno es en {wait} s")
LOOKUP_RATE = Kind("lookup_rate", "lookup: {host} rate limit (HTTP 429)",
                   "consulta: {host} limitó la frecuencia (HTTP 429)")
LOOKUP_HTTP = Kind("lookup_http", "lookup: {host} answered HTTP {status} for {what}",
                   "consulta: {host} respondió HTTP {status} para {what}")
LOOKUP_NOT_JSON = Kind("lookup_not_json", "lookup: {host}'s answer for {what} is not JSON",
                       "consulta: la respuesta de {host} para {what} no es JSON")
LOOKUP_NOTHING = Kind("lookup_nothing",
                      "lookup: the answer for {what} {id} has nothing at `{pick}`",
                      "consulta: la respuesta para {what} {id} no tiene nada en `{pick}`")

# new leads: a record added to a campaign before its recall (delivery/decide.py)
RECORD_ADDED = Kind("record_added", "added to campaign {campaign}: {said}",
                    "agregado a la campaña {campaign}: {said}")
RECORD_MISSING = Kind(
    "record_missing",
    "wolkvox does not have customer {customer} in campaign {campaign} ({said}): adding it",
    "wolkvox no tiene al cliente {customer} en la campaña {campaign} ({said}): se agrega")
RECORD_REFUSED = Kind("record_refused", "adding to campaign {campaign}: {reason}",
                      "agregando a la campaña {campaign}: {reason}")

# write-backs: what a CRM said to what the bridge told it (outbound/writeback.py)
WRITEBACK_SENT = Kind("writeback_sent", "{what}: {host} answered HTTP {status}",
                      "{what}: {host} respondió HTTP {status}")
WRITEBACK_TRANSPORT = Kind("writeback_transport", "{what}: transport error: {error}",
                           "{what}: error de conexión: {error}")
WRITEBACK_CUT_SHORT = Kind("writeback_cut_short", "{what}: cut short: {why}",
                           "{what}: interrumpida: {why}")
WRITEBACK_RATE = Kind("writeback_rate", "{what}: {host} rate limit (HTTP 429)",
                      "{what}: {host} limitó la frecuencia (HTTP 429)")
WRITEBACK_HTTP = Kind("writeback_http", "{what}: {host} answered HTTP {status}",
                      "{what}: {host} respondió HTTP {status}")
WRITEBACK_HTTP_SAID = Kind("writeback_http_said", "{what}: {host} answered HTTP {status}: {said}",
                           "{what}: {host} respondió HTTP {status}: {said}")
WRITEBACK_REDIRECT = Kind(
    "writeback_redirect",
    "{what}: {host} answered a redirect (HTTP {status}) to {to}; write the final address in "
    "the mapping's url",
    "{what}: {host} respondió una redirección (HTTP {status}) a {to}; escriba la dirección "
    "final en el url del mapeo")
WRITEBACK_REFUSED = Kind(
    "writeback_refused",
    "{what}: {host} refused the credentials (HTTP {status}); check the token in the "
    "mapping's writeback and its scopes",
    "{what}: {host} rechazó las credenciales (HTTP {status}); revise el token del writeback "
    "del mapeo y sus permisos")
WRITEBACK_TOKEN_REFUSED = Kind(
    "writeback_token_refused",
    "{what}: {host} refused the OAuth credentials ({error}); check the client id, secret or "
    "refresh token of the mapping's writeback",
    "{what}: {host} rechazó las credenciales OAuth ({error}); revise el client id, el secreto "
    "o el refresh token del writeback del mapeo")
WRITEBACK_TOKEN_FAILED = Kind("writeback_token_failed",
                              "{what}: no OAuth token from {host}: {error}",
                              "{what}: sin token OAuth de {host}: {error}")
WRITEBACK_HELD = Kind(
    "writeback_held", "held: {reason}; probed every {interval} s",
    "retenido: {reason}; se prueba cada {interval} s")
WRITEBACK_RETRY = Kind("writeback_retry", "retry in {delay} s: {reason}",
                       "reintento en {delay} s: {reason}")
WRITEBACK_GAVE_UP = Kind("writeback_gave_up", "failed after {attempts} attempts: {reason}",
                         "falló tras {attempts} intentos: {reason}")
WRITEBACK_TEMPLATE = Kind("writeback_template", "{what}: its template failed: {error}",
                          "{what}: su plantilla falló: {error}")
WRITEBACK_GONE = Kind("writeback_gone",
                      "{what}: the mapping has no such write-back any more (or it is off)",
                      "{what}: el mapeo ya no tiene ese writeback (o está apagado)")
WRITEBACK_SAMPLE_FAILED = Kind("writeback_sample_failed", "wolkvox refused the recall (an example)",
                               "wolkvox rechazó la rellamada (un ejemplo)")
WRITEBACK_SAMPLE_EXPIRED = Kind("writeback_sample_expired",
                                "the callback time passed (an example)",
                                "la hora de rellamada pasó (un ejemplo)")
WRITEBACK_REQUEUED = Kind("writeback_requeued", "re-queued by an operator",
                          "reencolado por un operador")

# operators' alerts (delivery/alerts.py): what a message to the operators' chat says
ALERT_RAISED = Kind("alert_raised", "⚠️ Recall Bridge: {what}",
                    "⚠️ Recall Bridge, aviso: {what}")
ALERT_CLEARED = Kind("alert_cleared", "✅ Recall Bridge, resolved: {what}",
                     "✅ Recall Bridge, resuelto: {what}")
ALERT_TOKEN_HELD = Kind("alert_token_held", "wolkvox token {token} is held ({sources}): {reason}",
                        "el token de wolkvox {token} está retenido ({sources}): {reason}")
ALERT_LOOKUP_HELD = Kind("alert_lookup_held",
                         "{source}'s CRM lookups are held: {reason}",
                         "las consultas al CRM de {source} están retenidas: {reason}")
ALERT_WRITEBACK_HELD = Kind("alert_writeback_held",
                            "{source}'s write-backs to its CRM are held: {reason}",
                            "los writebacks de {source} a su CRM están retenidos: {reason}")
ALERT_SPOOL = Kind(
    "alert_spool",
    "{requests} webhook request(s) are kept on this server's disk (the spool): the database "
    "cannot be written; they are replayed when it can",
    "{requests} solicitud(es) de webhook están guardadas en el disco de este servidor (el "
    "spool): no se puede escribir en la base de datos; se reproducen cuando se pueda")
ALERT_FAILURES = Kind(
    "alert_failures", "{failed} callbacks failed in the last {minutes} minutes "
    "(ALERT_FAILURES: {limit}); see the console's events, status failed",
    "{failed} rellamadas fallaron en los últimos {minutes} minutos (ALERT_FAILURES: "
    "{limit}); vea los eventos de la consola, estado fallido")

# operators: what an operator did (operators/operations.py)
REQUEUED = Kind("requeued", "re-queued by an operator (was {status})",
                "puesto en cola de nuevo por un operador (estaba {status})")
REQUEUED_MOVED = Kind(
    "requeued_moved",
    "re-queued by an operator (was {status}); callback time {asked} -> {due}",
    "puesto en cola de nuevo por un operador (estaba {status}); hora de rellamada "
    "{asked} -> {due}")
CANCELLED = Kind("cancelled", "cancelled by an operator: {why}",
                 "cancelado por un operador: {why}")

# store: a lead's events in order, and claims given back (store/ingest.py, store/events.py)
SUPERSEDED_BY = Kind("superseded_by", "superseded by event {event} for the same lead",
                     "reemplazado por el evento {event} del mismo contacto")
SUPERSEDED_BY_WAS = Kind("superseded_by_was",
                         "superseded by event {event} for the same lead (was: {reason})",
                         "reemplazado por el evento {event} del mismo contacto (antes: {reason})")
SUPERSEDED_LATE_CHANGE = Kind(
    "superseded_late_change",
    "superseded on arrival: event {event} of the same lead reports a later change ({later} "
    "against {this})",
    "reemplazado al llegar: el evento {event} del mismo contacto trae un cambio posterior "
    "({later} frente a {this})")
SUPERSEDED_LATE_ACK = Kind(
    "superseded_late_ack",
    "superseded on arrival: event {event} of the same lead was acknowledged later ({later} "
    "against {this}; this one was kept while the store was down, or the CRM sent it late)",
    "reemplazado al llegar: el evento {event} del mismo contacto se recibió después ({later} "
    "frente a {this}; este se guardó mientras la base de datos no estaba disponible, o el CRM "
    "lo envió tarde)")
SUPERSEDED_BEFORE_SENT = Kind(
    "superseded_before_sent",
    "superseded: a newer event for the same lead arrived before this one was sent",
    "reemplazado: llegó un evento más reciente del mismo contacto antes de enviar este")
SUPERSEDED_WORKER_STOPPED = Kind(
    "superseded_worker_stopped",
    "superseded: a newer event for the same lead arrived while this one was with a worker "
    "that stopped",
    "reemplazado: llegó un evento más reciente del mismo contacto mientras este estaba con un "
    "worker que se detuvo")
CLAIMED_AGAIN = Kind("claimed_again", "claimed again: its worker stopped",
                     "tomado de nuevo: su worker se detuvo")

# calling hours and time rules: why a recall's date moved, or why it is not sent
# (timing/rules.py); expiry is one of them
EXPIRED = Kind("expired", "expired: callback time {asked} passed more than {hours} h ago",
               "vencido: la hora de rellamada {asked} pasó hace más de {hours} h")
REFUSED_HOURS = Kind(
    "refused_hours",
    "refused: callback time {when} is outside the calling hours: {closed} ({hours})",
    "rechazado: la hora de rellamada {when} está fuera del horario de llamadas: {closed} "
    "({hours})")
MOVED = Kind("moved", "recall_date moved from {asked} to {moved}: {why}",
             "recall_date movida de {asked} a {moved}: {why}")
MOVED_DST_GAP = Kind(
    "moved_dst_gap",
    "{asked} does not exist in {timezone} (a DST change skips it): read as {read}",
    "{asked} no existe en {timezone} (un cambio de horario la salta): se lee como {read}")
MOVED_MIN_LEAD = Kind("moved_min_lead", "wolkvox wants {minutes} min ahead",
                      "wolkvox exige {minutes} min de anticipación")
MOVED_CLOSED = Kind("moved_closed", "{closed} ({hours})", "cerrado: {closed} ({hours})")
MOVED_DST_REPEAT = Kind(
    "moved_dst_repeat",
    "{when} {abbr} is a wall time the clock repeats (a DST change), and its date would name "
    "the first pass: sent when the repeat ends",
    "{when} {abbr} es una hora que el reloj repite (un cambio de horario) y su fecha "
    "nombraría la primera pasada: se envía cuando termina la repetición")
MOVED_CAP_DAY = Kind(
    "moved_cap_day",
    "the lead was already called {used} time(s) on {day} (max_recalls.{label}: {limit})",
    "al contacto ya se le llamó {used} vez/veces el {day} (max_recalls.{label}: {limit})")
MOVED_CAP_WEEK = Kind(
    "moved_cap_week",
    "the lead was already called {used} time(s) on the week of {day} (max_recalls.{label}: "
    "{limit})",
    "al contacto ya se le llamó {used} vez/veces en la semana del {day} "
    "(max_recalls.{label}: {limit})")

# leases: why a call in flight was cut short by the bridge itself (delivery/leases.py)
SLOT_TAKEN_OVER = Kind("slot_taken_over", "the slot's lease was taken over by another process",
                       "otro proceso tomó la concesión del cupo de llamada")
LEASES_NOT_RENEWED = Kind(
    "leases_not_renewed", "leases not renewed for {seconds} s (database connection lost?)",
    "concesiones sin renovar durante {seconds} s (¿se perdió la conexión a la base de datos?)")

# calling hours: why a moment is closed (timing/calling_hours.py); a weekday is a reason of
# its own so that its name is rendered too
WEEKDAYS = tuple(Kind(f"day_{en.lower()}", en, es) for en, es in (
    ("Monday", "lunes"), ("Tuesday", "martes"), ("Wednesday", "miércoles"),
    ("Thursday", "jueves"), ("Friday", "viernes"), ("Saturday", "sábado"),
    ("Sunday", "domingo")))
CLOSED_HOLIDAY = Kind("closed_holiday", "public holiday ({holiday})", "festivo ({holiday})")
CLOSED_DATE = Kind("closed_date", "closed date {date}", "fecha cerrada {date}")
CLOSED_MARGIN = Kind(
    "closed_margin", "before {opens} on {day}: {margin} min margin after the {opening} opening",
    "antes de las {opens} del {day}: margen de {margin} min tras la apertura de las {opening}")
CLOSED_OUTSIDE = Kind("closed_outside", "outside {windows} on {day}",
                      "fuera de {windows} el {day}")

# an event's status named inside a reason ("re-queued by an operator (was failed)"), in the
# console's words for it
STATUSES = {status: Kind(f"status_{status}", status, es) for status, es in (
    ("queued", "en cola"), ("sending", "enviando"), ("delivered", "entregado"),
    ("failed", "fallido"), ("superseded", "reemplazado"), ("expired", "vencido"),
    ("invalid", "inválido"), ("ignored", "ignorado"), ("cancelled", "cancelado"),
    ("test", "prueba"))}


def status(value: str) -> str:
    """A status as a reason's parameter: rendered in the page's language when it is one."""
    kind = STATUSES.get(str(value))
    return kind() if kind is not None else str(value)

# call results (delivery/results.py): how a recall's call went, as wolkvox's report says it
RESULT_WORDS = {word: Kind(f"result_{word.lower().replace('-', '_')}", en, es)
                for word, en, es in (
    ("ANSWER", "answered", "contestó"),
    ("NO-ANSWER", "not answered", "no contestó"),
    ("BUSY", "busy", "ocupado"),
    ("ANSWER-MACHINE", "answering machine", "contestador automático"),
    ("ABANDON", "abandoned (no agent free)", "abandonada (sin agente libre)"),
    ("CONGESTION", "network congestion", "congestión de la red"),
    ("FAILED", "call failed", "la llamada falló"),
    ("CHANUNAVAIL", "line unavailable", "línea no disponible"))}


def result_word(value: str) -> str:
    """wolkvox's word for a call as a reason's parameter: in the page's words when it is a
    known one, else as wolkvox gave it."""
    kind = RESULT_WORDS.get(str(value).upper())
    return kind() if kind is not None else str(value)


CALL_REPORTED = Kind("call_reported", "called {at} {zone}: {words} ({result})",
                     "llamada el {at} {zone}: {words} ({result})")
CALL_REPORTED_OTHER_PHONE = Kind(
    "call_reported_other_phone",
    "called {at} {zone} on another phone than the recall's ({phone}): {words} ({result})",
    "llamada el {at} {zone} a otro teléfono que el de la rellamada ({phone}): "
    "{words} ({result})")
CALL_NOT_REPORTED = Kind(
    "call_not_reported",
    "no result reported: wolkvox's report showed no call of this recall within {hours} h "
    "of its date (CALL_RESULTS_MAX_WAIT); no longer asked about",
    "sin resultado: el informe de wolkvox no mostró ninguna llamada de esta rellamada en "
    "{hours} h desde su fecha (CALL_RESULTS_MAX_WAIT); ya no se pregunta")
CALL_REPLACED = Kind(
    "call_replaced", "its result is no longer awaited: event {event}, a newer recall of the "
    "lead, was delivered",
    "ya no se espera su resultado: se entregó el evento {event}, una rellamada más reciente "
    "del contacto")
REPORT_NOT_JSON = Kind("report_not_json",
                       "campaign {campaign}'s call report: HTTP {status}, not JSON ({excerpt})",
                       "informe de llamadas de la campaña {campaign}: HTTP {status}, no es "
                       "JSON ({excerpt})")
REPORT_SHAPE = Kind("report_shape",
                    "campaign {campaign}'s call report: {problem}",
                    "informe de llamadas de la campaña {campaign}: {problem}")
REPORT_TOO_LARGE = Kind(
    "report_too_large",
    "campaign {campaign}'s call report: the answer is larger than {limit} MB; asked again at "
    "the next interval",
    "informe de llamadas de la campaña {campaign}: la respuesta supera {limit} MB; se pide de "
    "nuevo en el próximo intervalo")
REPORT_BAD_ROWS = Kind(
    "report_bad_rows",
    "campaign {campaign}'s call report: {count} row(s) unreadable ({problem}); their "
    "customers are asked about again at the next interval",
    "informe de llamadas de la campaña {campaign}: {count} fila(s) ilegibles ({problem}); sus "
    "clientes se consultan de nuevo en el próximo intervalo")
REPORT_OK = Kind("report_ok", "campaign {campaign}'s call report: {rows} row(s), {matched} "
                 "result(s) matched",
                 "informe de llamadas de la campaña {campaign}: {rows} fila(s), {matched} "
                 "resultado(s) asociados")
REPORT_FAILED = Kind("report_failed", "campaign {campaign}'s call report: {cause}",
                     "informe de llamadas de la campaña {campaign}: {cause}")
REPORT_WAITING_UNITS = Kind(
    "report_waiting_units",
    "campaign {campaign}'s call report waits: today's units for reports (CALL_RESULTS_SHARE of "
    "WOLKVOX_DAILY_LIMIT) are used, or the queued recalls need the rest",
    "el informe de llamadas de la campaña {campaign} espera: las unidades de hoy para informes "
    "(CALL_RESULTS_SHARE de WOLKVOX_DAILY_LIMIT) se agotaron, o las rellamadas en cola "
    "necesitan las demás")
