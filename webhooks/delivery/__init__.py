"""Recalls out: the worker's decisions, the drain that keeps a slot busy, leases bound to
their holder's life."""
