"""The ingest path's group commit, on SQLite and on PostgreSQL: requests written together in
one transaction, each told only what became of its own events, and the writer's connection
given back when the store is disposed of."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from webhooks.lifecycle import Received, Status
from webhooks.recall import _is_date
from webhooks.store import NewEvent, Store, StoreRefused
from webhooks.store.group_commit import _Job

RECALL = {"type_campaign": "predictive", "campaign_id": "4638", "customer_id": "7",
          "recall_telephone": "93001234567", "recall_date": "20301201103000"}


def event(key: str, lead: str = "7", source: str | None = "zapier") -> NewEvent:
    return NewEvent(source=source, dedup_key=key, token_key="tok",  # type: ignore[arg-type]
                    raw={"key": key, "ñ": "é"}, recall={**RECALL, "customer_id": lead})


def refused_event() -> NewEvent:
    """An event both databases refuse (its source NULL, against the column's NOT NULL)."""
    return event("refused", lead="2", source=None)


def test_requests_written_together_each_get_their_own_outcomes(store):
    """32 threads at once, 4 leads: every request is answered with its own event's id, and
    each lead keeps one queued event: its newest request (the latest acknowledged), in
    whichever order the writer took them."""
    def post(n: int) -> tuple[int, object]:
        [outcome] = store.add_events([event(f"k{n}", lead=str(n % 4))], 100.0 + n)
        return n, outcome

    with ThreadPoolExecutor(32) as pool:
        outcomes = dict(pool.map(post, range(64)))
    assert all(o.result == Received.ACCEPTED for o in outcomes.values())
    assert len({o.id for o in outcomes.values()}) == 64
    with store.engine.connect() as db:
        rows = db.execute(sa.text("SELECT id, dedup_key, status, customer_id FROM events")).all()
    by_key = {key: (id_, status) for id_, key, status, _ in rows}
    assert all(by_key[f"k{n}"][0] == outcome.id for n, outcome in outcomes.items())
    queued = sorted(key for _, key, status, _ in rows if status == Status.QUEUED)
    assert queued == sorted(f"k{max(n for n in range(64) if n % 4 == lead)}" for lead in range(4))


def test_a_batch_with_one_refused_request_stores_the_others(store):
    """A request whose values the database refuses is refused alone, even when it was
    written in one transaction with others."""
    group = store.group
    assert group is not None
    jobs = [_Job([event("good-1", lead="1")], 100.0),
            _Job([refused_event()], 100.0),
            _Job([event("good-2", lead="3")], 100.0)]
    connection = group._backend.connect()
    try:
        assert group._commit(connection, store.prepared(), jobs)
    finally:
        group._backend.drop(connection)
    good = [jobs[0], jobs[2]]
    assert all(job.error is None and job.result[0].result == Received.ACCEPTED for job in good)
    assert isinstance(jobs[1].error, StoreRefused)
    assert "null" in str(jobs[1].error).lower()
    assert store.counts() == {"queued": 2}


def test_a_refused_request_through_the_writer_raises_store_refused(store):
    with pytest.raises(StoreRefused):
        store.add_events([refused_event()], 100.0)
    [outcome] = store.add_events([event("fine")], 100.0)
    assert outcome.result == Received.ACCEPTED


def test_duplicates_within_one_batch_are_answered_as_duplicates(store):
    jobs = [_Job([event("same")], 100.0), _Job([event("same")], 101.0)]
    group = store.group
    connection = group._backend.connect()
    try:
        group._commit(connection, store.prepared(), jobs)
    finally:
        group._backend.drop(connection)
    assert jobs[0].result[0].result == Received.ACCEPTED
    assert jobs[1].result[0].result == Received.DUPLICATE
    assert jobs[1].result[0].id == jobs[0].result[0].id


def test_the_raw_body_and_recall_are_stored_as_json(store):
    [outcome] = store.add_events([event("json")], 100.0)
    with store.engine.connect() as db:
        raw, recall = db.execute(sa.select(sa.text("raw, recall")).select_from(
            sa.text("events")).where(sa.text(f"id = {outcome.id}"))).one()
    if isinstance(raw, str):  # SQLite hands JSON back as text
        import json
        raw, recall = json.loads(raw), json.loads(recall)
    assert raw == {"key": "json", "ñ": "é"} and recall["customer_id"] == "7"


@pytest.mark.postgres
def test_disposing_of_the_store_closes_the_writers_postgres_connection(pg_database):
    """A store disposed of gives its writer's connection back: otherwise every store a
    process opens (each test's, each `flask` command's) would keep a server connection."""
    store = Store(pg_database)
    store.migrate()
    admin = sa.create_engine(pg_database)
    name = pg_database.rsplit("/", 1)[1]

    def connections() -> int:
        with admin.connect() as db:
            return db.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                      ":name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
    try:
        before = connections()
        store.add_events([event(f"dispose-{threading.get_native_id()}")], 100.0)
        assert connections() >= before + 1  # the writer's own connection
        store.dispose()
        assert connections() <= before
    finally:
        admin.dispose()


@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
def test_a_wolkvox_date_is_real_exactly_when_strptime_says_so(digits):
    try:
        datetime.strptime(digits, "%Y%m%d%H%M%S")
        real = True
    except ValueError:
        real = False
    assert _is_date(digits) is real


def test_a_postgres_that_cannot_be_reached_is_unavailable_with_the_drivers_reason():
    """The writer cannot connect: StoreUnavailable naming what failed (the caller spools), not
    an unexpected error."""
    from webhooks.store import StoreUnavailable

    store = Store("postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.add_events([event("unreachable")], 100.0)
        assert "unexpected" not in str(raised.value)
        assert "connect" in str(raised.value).lower() or "refused" in str(raised.value).lower()
    finally:
        store.dispose()


def test_a_store_used_again_after_dispose_gets_a_writer_of_its_own(store):
    """dispose() stops the writer; a later write (a CLI command reusing the store, a test)
    starts another on its own queue, and the stopped one does not come back to life."""
    store.add_events([event("before")], 100.0)
    first = store.group._thread
    store.dispose()
    assert first is not None and not first.is_alive()
    [outcome] = store.add_events([event("after")], 101.0)
    assert outcome.result == Received.ACCEPTED
    assert store.group._thread is not first and store.group._thread.is_alive()
    assert not first.is_alive()
