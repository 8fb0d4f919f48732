"""One error family for every outbound call, named by what the worker does with it.

wolkvox (recalls today; call-result reports and add_record next) and the CRMs (lookups today;
write-backs next) classify their answers into their own kinds (`wolkvox.TokenRejected`,
`lookups.LookupRefused`...), each a member of one of these five. The worker has one ladder,
over these, whoever made the call: a new kind of call adds kinds here below, not a ladder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """What the far end said, whatever it was (None where it said nothing: a timeout)."""

    http_status: int | None
    code: int | None
    msg: str
    latency_ms: float


class OutboundError(Exception):
    """Base of every outbound call that did not do its work: `reason` says why we decided,
    `answer` (when there was one worth recording) what the far end said."""

    counted = True  # does it count as a failed attempt of the event?

    def __init__(self, reason: str, answer: Answer | None = None):
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


class RetryLater(OutboundError):
    """A passing fault (transport, timeout, 5xx, an unreadable answer): back off, counted, and
    not before `after` seconds when the far end said so (Retry-After)."""

    def __init__(self, reason: str, answer: Answer | None = None, after: float = 0.0):
        super().__init__(reason, answer)
        self.after = after


class WaitTurn(RetryLater):
    """Our own pace, not a fault: a CRM's `rate:` gives the next turn in `after` seconds. The
    event comes back then, and the wait is not a failed attempt."""

    counted = False


class RetrySoon(OutboundError):
    """Refused for concurrency: try again in a second or two; not a failed attempt."""

    counted = False


class HoldCredentials(OutboundError):
    """The far end refused our credentials: hold them and probe slowly; nothing is lost, and
    no quota unit is taken to be spent."""

    counted = False


class HoldQuota(OutboundError):
    """The far end's daily quota is used up: hold the token until the quota resets."""

    counted = False


class GiveUp(OutboundError):
    """This request can never succeed as it is (a 400, an object that does not exist): the
    event fails with the reason."""
