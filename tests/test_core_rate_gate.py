"""One rate gate per CRM: a mapping's `rate:` spaces every call to its CRM, whichever process
or machine makes it, with the turns kept in the store (SQLite and PostgreSQL); a turn too far
away is not waited for but retried later; a bad `rate:` is one clear line at start."""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ENVIRON, bridge_of, drain
from tests.hubspot_lookalike import HubSpotLookalike
from tests.procs import Proc
from tests.test_crms import hubspot_event, point_hubspot_at, post_hubspot
from tests.test_mapping_files import LABEL, SETTINGS, VALID, problems_of, write
from webhooks.mapping.files import load_source
from webhooks.outbound.errors import RetryLater
from webhooks.outbound.rate_gate import RateGate

JITTER = 0.03  # how late a sleeping process may wake on a busy machine, s
# Takes N turns of one key at RATE through the gate, from the shared start moment on, and
# prints the moment each turn began (when the CRM call would start).
TAKER = """
import json, sys, time
from webhooks.store import Store
from webhooks.outbound.rate_gate import RateGate
url, rate, count, start = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
gate = RateGate(Store(url))
gate.wait("warm-up", rate, 30.0)  # connected and compiled before the start: no slow first turn
time.sleep(max(0.0, start - time.time()))
began = []
for _ in range(count):
    gate.wait("kommo", rate, 30.0)
    began.append(time.time())
print(json.dumps(began))
"""


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of `times` inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered[i:] if t < start + window)
               for i, start in enumerate(ordered))


# --- across processes --------------------------------------------------------------------
def test_two_processes_together_never_exceed_the_rate_over_any_window(store, tmp_path):
    rate, each = 10.0, 10
    start = time.time() + 4  # both processes imported and connected by then
    procs = [Proc([sys.executable, "-c", TAKER, store.url, str(rate), str(each), str(start)],
                  {}, tmp_path / f"taker-{n}.log") for n in range(2)]
    try:
        for proc in procs:
            assert proc.popen.wait(60) == 0, proc.output()
        began = [t for proc in procs for t in json.loads(proc.output().splitlines()[-1])]
    finally:
        for proc in procs:
            proc.kill()
    assert len(began) == 2 * each
    ordered = sorted(began)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    # One shared pace, not one per process (apart, each would take its turns at once). A
    # process the machine runs late narrows the gap after its turn, never the count below.
    assert statistics.median(gaps) >= 1 / rate - JITTER
    assert most_in_any_window(began, 1.0) <= rate + 1  # +1: a late starter beside an on-time one
    assert ordered[-1] - ordered[0] >= (2 * each - 1) / rate - JITTER


def test_a_turn_further_than_the_deadline_is_not_taken_and_says_when_to_come_back(store):
    gate = RateGate(store)
    assert gate.wait("bitrix24", 0.1, max_wait=1.0) == 0.0  # the first turn is now
    with pytest.raises(RetryLater) as first:
        gate.wait("bitrix24", 0.1, max_wait=1.0)
    assert 9.0 <= first.value.after <= 10.0
    assert "0.1 requests per second" in str(first.value)
    with pytest.raises(RetryLater) as again:  # the refused turn was not reserved
        gate.wait("bitrix24", 0.1, max_wait=1.0)
    assert again.value.after <= first.value.after
    assert gate.wait("another-crm", 0.1, max_wait=1.0) == 0.0  # one pace per key
    assert gate.wait("bitrix24", None, max_wait=0.0) == 0.0  # no rate: no limit


# --- a lookup, end to end ----------------------------------------------------------------
@pytest.fixture
def timed_hubspot(mappings_dir: Path) -> Any:
    """A HubSpot look-alike that notes when each call arrived; hubspot.yaml points at it."""
    server = HubSpotLookalike(ENVIRON["HUBSPOT_PRIVATE_APP_TOKEN"])
    server.arrived = []

    @server.app.before_request
    def note() -> None:
        server.arrived.append(time.time())

    server.start()
    point_hubspot_at(server, mappings_dir)
    for n in range(6):
        server.add_contact(1000 + n, phone=f"300 123 {4500 + n}",
                           callback_at="2030-12-01T15:30:00Z")
    yield server
    server.stop()


def test_a_lookup_against_the_crm_is_paced_at_the_mappings_rate(make_app, clock, sandbox,
                                                                timed_hubspot):
    app = make_app(environ={"HUBSPOT_RATE": "5"})
    assert bridge_of(app).sources["hubspot"].rate == 5.0
    post_hubspot(app, clock, [hubspot_event(n, 1000 + n) for n in range(6)])
    drain(app)
    assert bridge_of(app).store.counts() == {"delivered": 6}
    arrived = sorted(timed_hubspot.arrived)
    assert len(arrived) == 6
    gaps = [b - a for a, b in zip(arrived, arrived[1:], strict=False)]
    assert statistics.median(gaps) >= 0.2 - JITTER  # a late call narrows only the gap after
    assert most_in_any_window(arrived, 1.0) <= 5 + 1
    assert arrived[-1] - arrived[0] >= 5 * 0.2 - JITTER


def test_a_lookup_whose_turn_is_past_its_deadline_is_retried_later_without_the_call(
        make_app, clock, sandbox, timed_hubspot):
    app = make_app(environ={"HUBSPOT_RATE": "0.1"}, lookup_timeout=1.0)
    response = post_hubspot(app, clock, [hubspot_event(n, 1000 + n) for n in range(2)])
    first, second = (event["id"] for event in response.get_json()["events"])
    drain(app)
    store = bridge_of(app).store
    assert store.get(first)["status"] == "delivered"
    waiting = store.get(second)
    assert waiting["status"] == "queued"
    assert "rate: hubspot's CRM takes 0.1 requests per second" in waiting["reason"]
    assert waiting["next_attempt_at"] >= clock().timestamp() + 8  # not before its turn
    assert waiting["attempts"] == 0  # our own pace is not a failed attempt
    assert len(timed_hubspot.arrived) == 1  # the CRM was not called for it


# --- the mapping key ---------------------------------------------------------------------
RATE_LINE = (f"{LABEL}: rate: must be a number of requests per second, above 0 and at most "
             "1000 (e.g. rate: 10, or rate: 0.5 for one every 2 s); leave it out for no limit")
BAD_RATES = st.one_of(
    st.floats(max_value=0.0), st.floats(min_value=1000.0, exclude_min=True),
    st.just(math.nan), st.booleans(), st.text("abcdefghijklmnopqrstuvwxyz/ ", min_size=1),
    st.lists(st.integers(1, 10), max_size=2), st.dictionaries(st.text(max_size=3), st.integers()),
)
ANY_FILE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def mapping(tmp_path: Path, spec: dict[str, Any]) -> Path:
    """`spec` as mappings/crm.yaml (the folder name is part of every problem's line)."""
    folder = tmp_path / "mappings"
    folder.mkdir(exist_ok=True)
    return write(folder, spec)


@ANY_FILE
@given(value=BAD_RATES)
def test_a_bad_rate_is_one_line_naming_the_file_the_key_and_the_fix(tmp_path, value):
    assert problems_of(mapping(tmp_path, {**VALID, "rate": value})) == [RATE_LINE]


@ANY_FILE
@given(value=st.floats(min_value=0.0, max_value=1000.0, exclude_min=True) | st.integers(1, 1000))
def test_a_rate_above_0_up_to_1000_is_compiled_onto_the_source(tmp_path, value):
    source = load_source(mapping(tmp_path, {**VALID, "rate": value}), SETTINGS)
    assert source.rate == float(value)


def test_a_misspelt_rate_key_is_told_the_right_one(tmp_path):
    [problem] = problems_of(mapping(tmp_path, {**VALID, "rates": 5}))
    assert problem.startswith(f"{LABEL}: rates: unknown key; did you mean 'rate'?")


def test_a_mapping_without_rate_has_no_limit(tmp_path):
    assert load_source(mapping(tmp_path, VALID), SETTINGS).rate is None


@pytest.mark.parametrize(("name", "documented"), [("hubspot", 10.0), ("kommo", 7.0),
                                                  ("bitrix24", 2.0)])
def test_each_shipped_lookup_mapping_sets_a_rate_under_its_crms_documented_limit(name,
                                                                               documented):
    raw = yaml.safe_load((Path(__file__).parent.parent / "mappings" / f"{name}.yaml")
                         .read_text(encoding="utf-8"))
    default = float(str(raw["rate"]).rsplit(":-", 1)[-1].rstrip("}"))
    assert 0 < default < documented
