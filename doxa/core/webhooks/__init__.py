"""Outbound webhooks (SPEC "Events out"): admins' subscriptions, each event delivered through the
one outbox, signed as Standard Webhooks says.

`service` manages subscriptions and reads the delivery log; `dispatch` turns committed events
into deliveries (one outbox item each); `courier` sends one with no transaction open, through
`destinations.post`; `signing` makes the secrets and the signatures.
"""
