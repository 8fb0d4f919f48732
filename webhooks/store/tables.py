"""The tables, as SQLAlchemy Core objects. Times are epoch seconds (floats) on every database,
so comparisons and arithmetic are the same on SQLite and PostgreSQL.

The schema itself is created and changed by the Alembic migrations next to this file; this
module only describes it for queries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only
MAX_ID = 2**63 - 1  # the id column's range on every database

events = Table(
    "events", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("token_key", String(32), nullable=False),
    Column("campaign_id", String(64)),
    Column("customer_id", String(255)),
    Column("raw", JSON, nullable=False),  # the event as the CRM sent it, for replay
    Column("recall", JSON),  # the five recall fields, once mapped
    Column("reason", Text, nullable=False, default=""),  # why it is in its status
    Column("reason_code", String(64)),  # the reason's kind (reasons.py); NULL: text alone
    Column("reason_params", Text),  # its parameters, as JSON text
    Column("attempts", Integer, nullable=False, default=0),  # counted failures
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),  # while sending: when the claim lapses
    Column("holder", String(64)),  # while sending: which worker
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("requeued_at", Float),  # an operator's last retry: MAX_EVENT_AGE counts from here
    Column("scheduled_for", Float),  # delivered: when the recall was set to ring (caps count it)
    Column("phone", String(32)),  # the recall's telephone as dialled: what operators search
    Column("occurred_at", Float),  # the CRM's own time of the change (mapping's occurred_at)
    # call results (wolkvox's campaign_3 report, delivery/results.py)
    Column("delivered_at", Float),  # when wolkvox accepted the recall
    Column("result_state", String(16)),  # awaiting | reported | missing | replaced; NULL: not asked
    Column("call_result", String(32)),  # wolkvox's word for the call (ANSWER, BUSY...), as given
    Column("called_at", Float),  # the report row's date: when the call was made
    Column("called_phone", String(32)),  # the row's telephone, when it is not the recall's
    UniqueConstraint("source", "dedup_key", name="uq_events_source_dedup"),
    Index("ix_events_due", "status", "next_attempt_at", "id"),  # the claim's order
    Index("ix_events_lead", "token_key", "campaign_id", "customer_id", "status"),
    Index("ix_events_phone", "phone"),
    Index("ix_events_customer", "customer_id"),
    Index("ix_events_status_id", "status", "id"),
    Index("ix_events_source_id", "source", "id"),
    Index("ix_events_created", "created_at"),
    Index("ix_events_awaiting", "result_state", "token_key", "campaign_id", "scheduled_for"),
    Index("ix_events_called", "called_at"),
)

attempts = Table(
    "attempts", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event_id", ID, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("latency_ms", Float),
    Column("http_status", Integer),
    Column("wolkvox_code", Integer),
    Column("wolkvox_msg", Text),
    Column("outcome", String(16), nullable=False),  # delivered | retry | held | failed
    Column("reason", Text, nullable=False),
    Column("reason_code", String(64)),
    Column("reason_params", Text),
    Index("ix_attempts_event", "event_id"),
    Index("ix_attempts_at", "at"),
)

slots = Table(  # one row per (token, slot number): a lease on one of the token's calls
    "slots", metadata,
    Column("token_key", String(32), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("holder", String(64)),
    Column("lease_until", Float, nullable=False, default=0.0),
)

quota = Table(  # calls made per token per day (the day in the operation's timezone)
    "quota", metadata,
    Column("token_key", String(32), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("used", Integer, nullable=False, default=0),
)

holds = Table(  # a token (or a source's CRM credentials) that must not be used now, and why
    "holds", metadata,
    Column("token_key", String(96), primary_key=True),  # a token, lookup:<s>, writeback:<s>
    Column("kind", String(16), nullable=False),  # quota | token | lookup | writeback
    Column("reason", Text, nullable=False),
    Column("reason_code", String(64)),
    Column("reason_params", Text),
    Column("until", Float, nullable=False),  # no call before this (quota reset or next probe)
    Column("since", Float, nullable=False),
    Column("daily_limit", Integer),  # a quota hold: the limit it was judged against
)

probe = Table(  # one row, rewritten by /readyz: the database takes writes, not only reads
    "probe", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
)

audit = Table(  # what operators did: who, when, what
    "audit", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=False),  # admin | viewer | cli (and how they logged in)
    Column("action", String(32), nullable=False),  # retry | cancel | reveal | bulk-retry | ...
    Column("event_id", ID),
    Column("detail", Text, nullable=False),
)

store_identity = Table(  # one row, written once by migration 0007: which store this is
    "store_identity", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("store_id", String(32), nullable=False),
)

rates = Table(  # one row per rate-gated destination (a source's CRM): its next free moment
    "rates", metadata,
    Column("key", String(96), primary_key=True),
    Column("next_at", Float, nullable=False),  # no call may start before this (epoch s)
)

reports = Table(  # one row per token and campaign: its call-result report's turn and last outcome
    "reports", metadata,
    Column("token_key", String(32), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("next_at", Float, nullable=False),  # no report of it may be asked for before this
    Column("last_at", Float),
    Column("outcome", String(16)),  # ok | bad | refused | failed: how the last one went
    Column("reason", Text, nullable=False, default=""),
    Column("reason_code", String(64)),
    Column("reason_params", Text),
    Column("rows", Integer),  # rows the last report answered
)

writebacks = Table(  # what the bridge tells a CRM of a callback (a mapping's `writeback:`)
    "writebacks", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    # NULL: an operators' alert (ALERT_WEBHOOK_URL), source "alerts"
    Column("event_id", ID, ForeignKey("events.id", ondelete="CASCADE")),
    Column("source", String(64), nullable=False),
    Column("name", String(64), nullable=False),  # the mapping's entry
    Column("moment", String(16), nullable=False),  # scheduled | failed | expired | called
    Column("facts", JSON, nullable=False),  # the moment as it was: recall, dates, result, reason
    Column("status", String(16), nullable=False),  # queued | sending | done | failed
    Column("attempts", Integer, nullable=False, default=0),  # counted failures
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),  # while sending: when the claim lapses
    Column("holder", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("sent_at", Float),  # when the CRM answered 2xx
    Column("http_status", Integer),  # the CRM's last answer
    Column("answer", Text),  # what it said, short and phone-masked
    Column("reason", Text, nullable=False, default=""),
    Column("reason_code", String(64)),
    Column("reason_params", Text),
    Index("ix_writebacks_due", "status", "next_attempt_at", "id"),
    Index("ix_writebacks_event", "event_id"),
)

alerts = Table(  # one row per operators' alert condition (delivery/alerts.py)
    "alerts", metadata,
    Column("key", String(128), primary_key=True),  # token:<key>, lookup:<s>, spool, failures
    Column("active", Boolean, nullable=False),  # the condition stands now
    Column("since", Float, nullable=False),  # it started (or cleared) then
    Column("said", Boolean, nullable=False),  # its raising was told (its clearing will be)
    Column("said_at", Float),  # when it was last told: once per ALERT_QUIET at most
    Column("text", Text, nullable=False, default=""),  # what it is, as told
)

campaign_records = Table(  # customers the bridge added to a campaign (add_record): never twice
    "campaign_records", metadata,
    Column("token_key", String(32), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("customer_id", String(255), primary_key=True),
    Column("added_at", Float, nullable=False),
    Column("event_id", ID),  # the event whose decision added it
)
