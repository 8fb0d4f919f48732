"""Event states and the rules for moving between them.

`queued` -> `sending` -> `delivered`; `sending` -> `queued` again (retry, hold); terminal:
`delivered`, `failed`, `superseded`, `expired`, `invalid`, `ignored`, `cancelled`, `test`. Only
an operator's retry brings a terminal `failed`, `expired`, `invalid` or `ignored` event back to
`queued`; only a queued one can be cancelled.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"  # waiting for its next_attempt_at
    SENDING = "sending"  # claimed by a worker; its lease says until when
    DELIVERED = "delivered"  # wolkvox answered 202
    FAILED = "failed"  # permanent error, or retries exhausted: the reason says which
    SUPERSEDED = "superseded"  # a newer event for the same lead replaced it
    EXPIRED = "expired"  # its callback time passed before it could be sent
    INVALID = "invalid"  # the mapping could not produce a valid recall; kept for replay
    IGNORED = "ignored"  # the mapping's `when` is false: not a callback request; kept, not sent
    CANCELLED = "cancelled"  # an operator stopped it before it was sent, with a reason
    TEST = "test"  # captured at /hooks/<source>/test: judged like a real one, never sent


class Received(StrEnum):
    """What a webhook did with one event, as its answer and /metrics (`result`) say."""

    ACCEPTED = "accepted"  # stored as queued: it will be sent
    DUPLICATE = "duplicate"  # the same event was stored before: nothing new
    SUPERSEDED = "superseded"  # stored as superseded: an older change than one already stored
    INVALID = "invalid"  # stored as invalid, with the mapping's errors
    IGNORED = "ignored"  # stored as ignored: the mapping's `when` is false
    TEST = "test"  # captured at /hooks/<source>/test
    SPOOLED = "spooled"  # kept on the bridge's disk while the store is down


class AttemptOutcome(StrEnum):
    """What one attempt (a call, or a decision without one) came to, as stored in `attempts`
    and counted in `recall_bridge_delivery_outcomes_total`."""

    DELIVERED = "delivered"  # wolkvox answered 202
    RETRY = "retry"  # retried, later (backoff) or soon (concurrency)
    HELD = "held"  # waits for a held token, quota or CRM credentials
    FAILED = "failed"  # for good
    EXPIRED = "expired"  # the callback time passed (a plan's `expired`)
    REFUSED = "refused"  # outside the calling hours of a source that says `outside: refuse`
    SUPERSEDED = "superseded"  # a later change, or a duplicate of a recall still ahead
    REQUEUED = "requeued"  # an operator's retry
    CALLED = "called"  # wolkvox's report says how the recall's call went
    NO_RESULT = "no_result"  # no call of the recall was reported within CALL_RESULTS_MAX_WAIT
    ADDED = "added"  # the lead was added to the campaign (add_record) before its recall


class ResultState(StrEnum):
    """Where a delivered recall stands with its call's result (the `result_state` column;
    NULL: not asked about, call results off when it was delivered)."""

    AWAITING = "awaiting"  # its report is asked for once its date (less 10 minutes) has come
    REPORTED = "reported"  # a report row said how the call went (call_result, called_at)
    MISSING = "missing"  # no row within CALL_RESULTS_MAX_WAIT of its date: no longer asked
    REPLACED = "replaced"  # a newer recall of the lead was delivered: it awaits instead


class Moment(StrEnum):
    """What happened to a callback that a mapping's `writeback:` can tell its CRM."""

    SCHEDULED = "scheduled"  # wolkvox accepted the recall (its date, moved or not)
    FAILED = "failed"  # the recall could not be placed: the reason says why
    EXPIRED = "expired"  # its callback time passed before it could be sent
    CALLED = "called"  # wolkvox's report says how the call went


class WritebackStatus(StrEnum):
    """A write-back's own state (the `writebacks` table): the event's never changes for it."""

    QUEUED = "queued"  # waiting for its next_attempt_at (a retry, or held credentials)
    SENDING = "sending"  # claimed by a delivery process until lease_until
    DONE = "done"  # the CRM answered 2xx
    FAILED = "failed"  # the CRM refused it (4xx), its template failed, or attempts ran out


WRITEBACK_ATTEMPTS = 8  # counted failures (transport, 5xx, 429) before a write-back fails


# wolkvox's words for a call, as its reports give them (wolkvox-api.md), and whether the
# customer was reached; any other word is kept as given and counted as "other".
CALL_RESULTS = ("ANSWER", "NO-ANSWER", "BUSY", "ANSWER-MACHINE", "ABANDON", "CONGESTION",
                "FAILED", "CHANUNAVAIL")
ANSWERED = "ANSWER"


TERMINAL = frozenset({Status.DELIVERED, Status.FAILED, Status.SUPERSEDED, Status.EXPIRED,
                      Status.INVALID, Status.IGNORED, Status.CANCELLED, Status.TEST})
CANCELLABLE = frozenset({Status.QUEUED})
RETRYABLE_BY_OPERATOR = frozenset({Status.FAILED, Status.INVALID, Status.EXPIRED,
                                   Status.IGNORED})
REJUDGED_ON_RETRY = frozenset({Status.INVALID, Status.IGNORED})  # mapped again with today's file

# Backoff after a counted failure: 10 s, 30 s, 2 min, 10 min, 30 min, 1 h, then hourly.
BACKOFF_SCHEDULE = (10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
JITTER = 0.2  # +-20 %, so that a burst of failures does not come back as a burst
RETRY_SOON = 1.5  # seconds, after wolkvox refused for concurrency (not counted)


def backoff_delay(attempts: int, rand: float) -> float:
    """Seconds to wait after the `attempts`-th counted failure; `rand` in [0, 1) for jitter."""
    base = BACKOFF_SCHEDULE[min(max(attempts, 1), len(BACKOFF_SCHEDULE)) - 1]
    return base * (1 - JITTER + 2 * JITTER * rand)
