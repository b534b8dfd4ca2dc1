"""Routing rules: conditions on a new ticket, and the actions that send it to its team."""
