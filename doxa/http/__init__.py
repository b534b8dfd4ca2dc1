"""What the two HTTP edges share (the REST API and the inbound webhooks): problem+json answers,
the paths they are served under, the ASGI middleware around both, bounded connections."""
