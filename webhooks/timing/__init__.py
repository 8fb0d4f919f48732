"""When a recall may be placed: time rules, caps, quota days and calling windows (pure)."""
