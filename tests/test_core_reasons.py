"""Reasons in the operator's language: every reason the bridge writes has a code and its
parameters beside its English text; a Spanish console page shows it in Spanish, the API returns
code, parameters and text, and a row written before codes shows its stored text."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import update

from tests.conftest import bridge_of, drain
from tests.test_console import ADMIN, VIEWER, post, signed_in, text
from tests.test_delivery import event, receive
from tests.test_receiver import zap
from webhooks import reasons
from webhooks.store.tables import attempts, events

SPANISH = {"Accept-Language": "es-CO,es;q=0.9"}
ENGLISH = {"Accept-Language": "en"}


@pytest.fixture
def app(make_app):
    return make_app(admin_token=ADMIN, viewer_token=VIEWER)


def api(app, path: str) -> dict:
    answer = app.test_client().get(path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def page(client, path: str, headers: dict) -> str:
    return html.unescape(text(client.get(path, headers=headers)))


def refused(app, sandbox) -> int:
    """An event wolkvox refused for good (a 400 with its own message): failed."""
    sandbox.configure(script=[400])
    [event_id] = receive(app, zap(lead=7))
    drain(app)
    assert event(app, event_id)["status"] == "failed"
    return event_id


# --- the catalog -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(reasons.CATALOG.values()), ids=list(reasons.CATALOG))
def test_every_reason_kind_has_a_spanish_text_naming_the_same_parameters(kind):
    assert kind.es.strip() and kind.es != kind.en, f"{kind.code}: no Spanish text of its own"
    assert reasons.names(kind.es) == reasons.names(kind.en), kind.code


def test_a_kind_whose_spanish_text_names_other_parameters_is_refused():
    with pytest.raises(ValueError, match="other parameters"):
        reasons.Kind("test_only_mismatch", "held: {reason}", "en espera: {motivo}")
    assert "test_only_mismatch" not in reasons.CATALOG


def test_a_reason_is_its_english_text_and_renders_nested_causes_in_spanish():
    reason = reasons.RETRY_IN(delay="30", reason=reasons.WOLKVOX_REFUSED(msg="BAD DATE"))
    assert reason == "retry in 30 s: wolkvox refused the recall: BAD DATE"
    stored = reasons.params_from(reasons.params_json(reason))
    assert reasons.render(reason.code, stored, reason, "es") == (
        "reintento en 30 s: wolkvox rechazó la rellamada: BAD DATE")  # wolkvox's words kept
    assert reasons.render("a_code_from_a_later_version", {}, "as stored", "es") == "as stored"


# --- what operators see ----------------------------------------------------------------------
def test_a_recall_wolkvox_refused_reads_in_spanish_on_the_spanish_event_page(app, sandbox):
    event_id = refused(app, sandbox)
    client = signed_in(app)
    spanish = page(client, f"/console/events/{event_id}", SPANISH)
    assert "wolkvox rechazó la rellamada: SCRIPTED 400" in spanish
    assert "wolkvox refused the recall" not in spanish
    assert "wolkvox rechazó la rellamada: SCRIPTED 400" in page(client, "/console/events",
                                                                 SPANISH)
    english = page(client, f"/console/events/{event_id}", ENGLISH)
    assert "wolkvox refused the recall: SCRIPTED 400" in english


def test_the_api_returns_the_reason_its_code_and_its_parameters(app, sandbox):
    event_id = refused(app, sandbox)
    found = api(app, f"/api/v1/events/{event_id}")
    assert found["reason"] == "wolkvox refused the recall: SCRIPTED 400"  # the text as today
    assert found["reason_code"] == "wolkvox_refused"
    assert found["reason_params"] == {"msg": "SCRIPTED 400"}
    [attempt] = found["attempts"]
    assert (attempt["reason_code"], attempt["reason_params"]) == ("wolkvox_refused",
                                                                  {"msg": "SCRIPTED 400"})
    [row] = [r for r in api(app, "/api/v1/events")["events"] if r["id"] == event_id]
    assert row["reason_code"] == "wolkvox_refused"


def test_a_retry_names_its_cause_in_spanish_through_the_store(app, sandbox):
    sandbox.configure(script=[500])
    [event_id] = receive(app, zap(lead=8))
    drain(app)
    row = event(app, event_id)
    assert row["status"] == "queued" and row["reason_code"] == "retry_in"
    assert row["reason"].startswith("retry in ") and row["reason"].endswith(
        " s: HTTP 500: SCRIPTED 500")
    spanish = page(signed_in(app), f"/console/events/{event_id}", SPANISH)
    assert "s: HTTP 500 de wolkvox: SCRIPTED 500" in spanish and "reintento en " in spanish


def test_a_held_token_shows_its_hold_in_spanish_on_the_overview(app, sandbox):
    sandbox.configure(script=[401])
    receive(app, zap(lead=9))
    drain(app)
    [hold] = bridge_of(app).store.holds().values()
    assert hold["reason_code"] == "held_probing"
    overview = page(signed_in(app), "/console/", SPANISH)
    assert "en espera: token rechazado: SCRIPTED 401; se prueba cada" in overview


def test_an_operators_retry_reads_in_spanish(app, sandbox):
    event_id = refused(app, sandbox)
    client = signed_in(app)
    assert post(client, f"/console/events/{event_id}/retry",
                token_from=f"/console/events/{event_id}").status_code == 303
    row = event(app, event_id)
    assert row["reason"].startswith("re-queued by an operator (was failed)")
    spanish = page(client, f"/console/events/{event_id}", SPANISH)
    assert "puesto en cola de nuevo por un operador (estaba fallido)" in spanish


def test_a_row_written_before_codes_shows_its_stored_text(app, sandbox):
    event_id = refused(app, sandbox)
    store = bridge_of(app).store
    with store.engine.begin() as db:  # as migration 0009 leaves a row written before it
        db.execute(update(events).where(events.c.id == event_id).values(
            reason="an operator's note from last year", reason_code=None, reason_params=None))
    spanish = page(signed_in(app), f"/console/events/{event_id}", SPANISH)
    assert "an operator's note from last year" in spanish
    found = api(app, f"/api/v1/events/{event_id}")
    assert found["reason"] == "an operator's note from last year"
    assert found["reason_code"] is None and found["reason_params"] is None


def test_every_reason_the_bridge_wrote_has_a_code(app, sandbox):
    """Refused, retried, held, invalid, superseded, re-queued: no reason written as free text
    (an operator's cancel note is a parameter of its coded reason)."""
    sandbox.configure(script=[400, 500])
    receive(app, zap(lead=1), zap(lead=2), zap(lead=3, phone="12"),
            zap(lead=4), {**zap(lead=4), "request_id": "req-4-later"})
    drain(app)
    sandbox.configure(script=[401])
    receive(app, zap(lead=5))
    drain(app)
    store = bridge_of(app).store
    with store.engine.connect() as db:
        rows = [*db.execute(events.select()).mappings(),
                *db.execute(attempts.select()).mappings()]
    written = {(r["reason"], r["reason_code"]) for r in rows if r["reason"]}
    assert {code for _, code in written} >= {"wolkvox_refused", "wolkvox_http", "held_probing",
                                             "invalid", "superseded_by"}, written
    assert [text for text, code in written if code is None] == []
