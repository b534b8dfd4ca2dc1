"""The one outbox: every item that leaves (ticket mail, account mail, webhook deliveries) goes
through it.

An item names the row it sends (`kind`, `ref_id`) and its destination (for mail, the
recipient's domain; for a webhook, the URL's host). It moves in three short transactions and
never holds one across the network: `queue.claim` leases due items (a committed
`lease_until`), the send happens with no transaction open, and `queue.record` writes the
outcome. A lease that expires (a crash in flight) makes the item due again, so only items in
flight are ever sent twice. Failures are sorted once (`failures.classify`): permanent ones
fail the item at once, temporary ones are retried with exponential backoff and jitter (or when
the receiver asked, `Retry-After`) until the kind's lifetime runs out; each kind has its
lifetime and backoff (`queue.LIFETIME`, `queue.BACKOFF`).
"""
