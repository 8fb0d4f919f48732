"""The only HTTP out: wolkvox, declared CRM lookups, and the deadline every call has."""
