"""One lead, several events: the newest callback is the one wolkvox keeps, whatever the timing."""

from __future__ import annotations

from webhooks.lifecycle import Status
from webhooks.store import NewEvent, Store
from webhooks.store.events import Decision

RECALL = {"type_campaign": "predictive", "campaign_id": "4638", "customer_id": "7",
          "recall_telephone": "93001234567", "recall_date": "20301201103000"}


def add(store: Store, key: str, now: float = 100.0, date: str = "20301201103000") -> int:
    [outcome] = store.add_events([NewEvent(source="zapier", dedup_key=key, token_key="tok",
                                           raw={}, recall={**RECALL, "recall_date": date})], now)
    return outcome.id


def test_newer_event_waits_while_an_older_one_of_the_lead_is_being_sent(store):
    older = add(store, "a")
    [claimed] = store.claim(["zapier"], "w1", 100.0, lease=30)
    newer = add(store, "b", date="20301202103000")
    assert store.get(older)["status"] == "sending"  # not superseded under its worker
    assert store.claim(["zapier"], "w2", 101.0, lease=30) == []
    assert store.finish(claimed.id, "w1", Decision(Status.DELIVERED, "ok"), 102.0)
    [next_one] = store.claim(["zapier"], "w2", 103.0, lease=30)
    assert next_one.id == newer


def test_older_event_that_must_retry_is_superseded_by_a_newer_one(store):
    older = add(store, "a")
    store.claim(["zapier"], "w1", 100.0, lease=30)
    newer = add(store, "b")
    retry = Decision(Status.QUEUED, "retry in 10 s: HTTP 500", next_attempt_at=110.0)
    assert store.finish(older, "w1", retry, 101.0)
    row = store.get(older)
    assert row["status"] == "superseded"
    assert f"superseded by event {newer}" in row["reason"] and "HTTP 500" in row["reason"]


def test_abandoned_older_event_is_superseded_not_requeued_when_a_newer_one_exists(store):
    older = add(store, "a")
    store.claim(["zapier"], "dead", 100.0, lease=30)
    newer = add(store, "b")
    assert store.requeue_abandoned(131.0) == 1
    assert store.get(older)["status"] == "superseded"
    assert store.get(newer)["status"] == "queued"


def test_outcome_of_a_lapsed_claim_does_not_overwrite_the_new_claimants(store):
    event_id = add(store, "a")
    store.claim(["zapier"], "slow", 100.0, lease=30)
    store.requeue_abandoned(131.0)
    store.claim(["zapier"], "fast", 132.0, lease=30)
    assert not store.finish(event_id, "slow", Decision(Status.FAILED, "late"), 133.0)
    assert store.get(event_id)["status"] == "sending"
    assert store.finish(event_id, "fast", Decision(Status.DELIVERED, "ok"), 134.0)
    assert store.get(event_id)["status"] == "delivered"


def test_unsent_older_event_given_back_is_superseded_when_a_newer_one_exists(store):
    older = add(store, "a")
    store.claim(["zapier"], "w1", 100.0, lease=30)
    newer = add(store, "b")
    assert store.release([older], "w1", 101.0, "held: quota") == 1
    assert store.get(older)["status"] == "superseded"
    assert store.get(newer)["status"] == "queued"
