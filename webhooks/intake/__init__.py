"""Webhooks in: the receiver, judging a body's events, and trying a body on a mapping."""
