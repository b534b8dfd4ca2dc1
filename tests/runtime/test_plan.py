"""The execution plan: where an intake event is processed, decided once from the settings."""

from __future__ import annotations

import pytest

from doxa.runtime.plan import Placement, Plan
from tests.conftest import make_settings

POSTGRESQL = "postgresql+psycopg://doxa@127.0.0.1/doxa"
SQLITE = "sqlite:///doxa.db"


@pytest.mark.parametrize(
    ("url", "processes", "intake", "classify_in_workers"),
    [
        (POSTGRESQL, 2, Placement.WHOLE_IN_WORKERS, True),
        (SQLITE, 2, Placement.PARSE_IN_WORKERS, False),
        (POSTGRESQL, 0, Placement.IN_PROCESS, False),
        (SQLITE, 0, Placement.IN_PROCESS, False),
    ],
)
def test_intake_goes_where_the_database_and_the_processes_allow(
    url: str, processes: int, intake: Placement, classify_in_workers: bool
) -> None:
    plan = Plan.of(make_settings(url, worker_processes=processes))
    assert (plan.worker_processes, plan.intake) == (processes, intake)
    assert plan.classify_in_workers is classify_in_workers


def test_a_batch_never_gets_more_time_than_one_event() -> None:
    plan = Plan.of(make_settings(SQLITE, worker_processes=1, processing_timeout_seconds=3))
    assert (plan.event_deadline, plan.batch_deadline) == (3, 3)
