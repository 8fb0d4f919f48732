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
