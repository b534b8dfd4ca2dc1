"""Agents' mail notifications (SPEC "Events out"): events become one mail per agent and ticket
a minute, through the one outbox."""
