from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from doxa.api import problems
from doxa.api.deps import AdminUser, IdPath, PipelineDep, SessionDep, WorkerDep
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake import service
from doxa.core.intake.schemas import IntakeEventRead
from doxa.core.schemas import MAX_PAGE_SIZE, Page
from doxa.runtime.intake import IntakeWorker

router = APIRouter(prefix="/intake", tags=["intake"])


@router.get("")
def list_intake(
    db: SessionDep,
    admin: AdminUser,
    status: IntakeStatus | None = None,
    channel: Channel | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[IntakeEventRead]:
    """Every inbound event with its outcome, newest first."""
    events, next_cursor = service.list_events(
        db, actor=admin, status=status, channel=channel, cursor=cursor, limit=limit
    )
    return Page(items=[IntakeEventRead.model_validate(e) for e in events], next_cursor=next_cursor)


@router.get("/{event_id}")
def get_intake(event_id: IdPath, db: SessionDep, admin: AdminUser) -> IntakeEventRead:
    """One inbound event."""
    return IntakeEventRead.model_validate(service.get_event(db, event_id, actor=admin))


@router.post(
    "/{event_id}/reprocess",
    status_code=202,
    responses=problems.errors(409, e409="Only failed events are reprocessed"),
)
def reprocess(
    event_id: IdPath,
    db: SessionDep,
    admin: AdminUser,
    pipeline: PipelineDep,
    worker: WorkerDep,
    background: BackgroundTasks,
) -> IntakeEventRead:
    """Run a failed event through the pipeline again (after a fix); poll it for the outcome."""
    service.get_event(db, event_id, actor=admin)
    event = pipeline.requeue(db, event_id)
    _process_after_response(background, worker, event_id, event.raw_size)
    return IntakeEventRead.model_validate(event)


@router.post(
    "/{event_id}/release",
    status_code=202,
    responses=problems.errors(409, e409="Only held events are released"),
)
def release(
    event_id: IdPath,
    db: SessionDep,
    admin: AdminUser,
    pipeline: PipelineDep,
    worker: WorkerDep,
    background: BackgroundTasks,
) -> IntakeEventRead:
    """Process a held event as ordinary mail (a loop, rate or trust rule held a real
    customer); poll it for the outcome."""
    service.get_event(db, event_id, actor=admin)
    event = pipeline.release(db, event_id, actor_id=admin.id)
    _process_after_response(background, worker, event_id, event.raw_size)
    return IntakeEventRead.model_validate(event)


def _process_after_response(
    background: BackgroundTasks, worker: IntakeWorker, event_id: int, size: int
) -> None:
    async def submit() -> None:  # after the response (so after the commit), on the loop
        worker.submit(event_id, size)  # its queue by size

    background.add_task(submit)
