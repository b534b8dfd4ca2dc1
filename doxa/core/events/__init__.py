"""The event history: every change to a ticket, each message, SLA warnings and breaches, held
and rejected intake; written in the same transaction as the change it records."""
