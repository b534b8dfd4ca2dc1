"""Every process, loop, pool and runner, and every hand-off between them, lives here.

The domain (`doxa.core`) is synchronous; the edges (`doxa.gateway`, `doxa.api`) answer and
hand over. `plan` decides from the settings what runs where and builds the `Runtime`. Kept
empty of imports: each worker process imports `pool` and what it runs, nothing else.
"""
