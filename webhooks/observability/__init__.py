"""Counters and log lines, used by every layer above (nothing here imports them)."""
