"""The order of the parallel run: the longest tests start first, one share on each worker.

`make pytest` runs on pytest-xdist's worksteal scheduler, which hands worker i the i-th
contiguous slice of the collection and, when a worker runs dry, moves the tail of the longest
queue to it. A half-minute test that happens to sit at the end of a slice starts last and
holds the whole run while the other worker idles. So the known-long tests (SECONDS, measured
on a 2-core machine) are dealt out longest first to the slice with the least work, and each
slice starts with its share; the rest keep their order, so tests on one database stay together
(a session-scoped database is set up again each time the backend changes).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

# Seconds, by node id prefix (a class or a test without its parameters), per backend.
# A class whose tests share a class- or module-scoped fixture is listed whole: its tests move
# together and keep their order.
SECONDS = {
    "tests/api/test_assignment.py::TestTwoProcesses": 35.0,
    "tests/test_event_history_kill.py::TestHistoryAfterKill9": 27.0,
    "tests/core/intake/test_pipeline.py::TestCorpusThroughPipeline": 22.0,
    "tests/api/test_schema_fuzz.py::TestSchemaFuzz": 26.0,
    "tests/core/tickets/test_search.py::TestSearchMatchesAPlainFilter": 14.0,
    "tests/test_readme.py": 20.0,
    "tests/test_server.py::TestRunning": 10.0,
    "tests/gateway/test_durability.py": 6.0,
    "tests/gateway/test_bounce_shapes.py::TestCustomersStillWrite": 5.0,
    "tests/core/teams/test_assignment.py::TestQueue": 5.0,
    "tests/core/sla/test_sweep.py::TestSweep": 4.0,
    "tests/api/test_triage.py::TestOwnTaxonomy": 6.0,
}


def _backend(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return str(callspec.params.get("database_url", "")) if callspec else ""


def _group(item: pytest.Item) -> tuple[str, str] | None:
    for prefix in SECONDS:
        if item.nodeid.startswith(prefix + "::"):
            return prefix, _backend(item)
    return None


def _slices(total: int, workers: int) -> list[int]:
    """The sizes of xdist's first hand-out: each idle worker gets pending // workers left."""
    sizes = []
    for left in range(workers, 0, -1):
        sizes.append(total // left)
        total -= sizes[-1]
    return sizes


def long_tests_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    groups: dict[tuple[str, str], list[pytest.Item]] = {}
    rest: list[pytest.Item] = []
    for item in items:
        key = _group(item)
        if key is None:
            rest.append(item)
        else:
            groups.setdefault(key, []).append(item)
    loads = [0.0] * workers
    shares: list[list[tuple[str, str]]] = [[] for _ in range(workers)]
    for key in sorted(groups, key=lambda k: (-SECONDS[k[0]], k)):
        lightest = loads.index(min(loads))
        loads[lightest] += SECONDS[key[0]]
        shares[lightest].append(key)
    ordered: list[pytest.Item] = []
    start = 0
    for share, size in zip(shares, _slices(len(items), workers), strict=True):
        take = max(0, size - sum(len(groups[key]) for key in share))
        following = rest[start : start + take]
        then = _backend(following[0]) if following else ""
        # One backend after the other, ending on the one the slice's other tests start with.
        share.sort(key=lambda k: (k[1] == then, k[1], -SECONDS[k[0]]))
        ordered += [item for key in share for item in groups[key]] + following
        start += take
    return ordered + rest[start:]


def worker_count(config: pytest.Config) -> int:
    """The number of xdist workers this process is one of (1 outside xdist)."""
    workerinput: dict[str, object] = getattr(config, "workerinput", {})
    count = workerinput.get("workercount", 1)
    return count if isinstance(count, int) else 1


def reorder(config: pytest.Config, items: Sequence[pytest.Item]) -> list[pytest.Item]:
    workers = worker_count(config)
    return long_tests_first(list(items), workers) if workers > 1 else list(items)
