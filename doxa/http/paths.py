"""Where each HTTP edge is served: named once, for the routers and the middleware that tell
them apart (a webhook may post a whole message; an API body is small)."""

API = "/api/v1"
INBOUND = f"{API}/inbound"
# The webhook endpoints under INBOUND (`/api/v1/inbound/form`...), as the metrics name them.
WEBHOOKS = frozenset({"form", "mailgun", "postmark", "sendgrid"})
