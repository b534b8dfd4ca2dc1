from __future__ import annotations

import threading

import pytest

from doxa.core.auth import HashPool
from doxa.core.errors import TooManyRequests


class TestHashPool:
    def test_a_full_pool_answers_too_many_requests_instead_of_queueing(self) -> None:
        pool, started, release = HashPool(1), threading.Event(), threading.Event()

        def busy() -> None:
            started.set()
            release.wait(5)

        holder = threading.Thread(target=pool.run, args=(busy,))
        holder.start()
        try:
            assert started.wait(5)
            with pytest.raises(TooManyRequests) as refused:
                pool.run(lambda: None)
            assert refused.value.retry_after == 1
        finally:
            release.set()
            holder.join()
            pool.close()
        assert HashPool(1).run(lambda: 42) == 42
