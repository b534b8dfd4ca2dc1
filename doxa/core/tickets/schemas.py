from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

from doxa.core.enums import (
    ActorType,
    Channel,
    ClassificationState,
    DeliveryState,
    Direction,
    Priority,
    Role,
    SlaState,
    Status,
    ThreadedBy,
)
from doxa.core.schemas import Id, NoNul, OneLine, example
from doxa.core.sla.schemas import SLA_HELP, SlaRead
from doxa.core.tickets.models import MAX_TAG_CHARS, MAX_TAGS

MAX_BODY_CHARS = 200_000
Subject = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=998), NoNul, OneLine
]
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS), NoNul]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
# A tag as kept and compared: trimmed and lower-case (`VIP` and `vip ` are one tag).
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_CHARS),
    NoNul,
    OneLine,
    AfterValidator(str.lower),
]


class TicketCreate(BaseModel):
    # No requester_email in the example: tried out by an agent, it would make up a customer.
    model_config = example(
        subject="Invoice 2231 charged twice",
        body="My card was charged twice for invoice 2231 this month. Please refund one.",
        priority="high",
    )

    subject: Subject
    body: Body
    priority: Priority | None = None
    requester_email: EmailStr | None = Field(
        None,
        description="staff only: the customer the ticket is for (a new address becomes a "
        "client user); a client may only leave it out or give their own",
    )


class TicketUpdate(BaseModel):
    """Only the fields sent change, e.g. `{"status": "pending", "priority": "high"}`."""

    # Sent as it stands from Swagger, the example must change nothing: an empty change.
    model_config = example()

    status: Status | None = None
    priority: Priority | None = None
    category: Label | None = None
    assignee_id: Id | None = Field(None, description="null unassigns")
    team_id: Id | None = Field(None, description="staff only: null takes it out of its team")
    tags: list[Tag] | None = Field(
        None,
        max_length=MAX_TAGS,
        description=f"staff only: the whole list (at most {MAX_TAGS}, kept lower-case)",
    )
    cc: list[Annotated[str, StringConstraints(max_length=320), NoNul]] | None = Field(
        None, max_length=50, description="the whole list of participants besides the requester"
    )


class TicketFilters(BaseModel):
    status: Status | None = None
    priority: Priority | None = None
    category: Label | None = None
    assignee_id: Id | None = None
    requester_id: Id | None = None
    team_id: Id | None = None
    tag: Tag | None = None
    needs_triage: bool | None = None
    channel: Channel | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] | None = None
    q: Annotated[str, StringConstraints(max_length=200), NoNul] | None = None
    sla_state: SlaState | None = None
    sla_due_before: AwareDatetime | None = Field(
        None, description="tickets with a running target due before this moment"
    )
    sort: Literal["newest", "sla_due"] = Field(
        "newest",
        description="`newest` first, or `sla_due`: the tickets with a running service-level "
        "target, the soonest due first (what breaches next)",
    )


class PersonRead(BaseModel):
    """Who a requester is, embedded so an agent never has to look an id up."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str | None


class AuthorRead(PersonRead):
    role: Role


class TeamRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str


class TicketRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "reference": "[#42]",
                    "subject": "Invoice 2231 charged twice",
                    "status": "open",
                    "priority": "high",
                    "category": "billing",
                    "channel": "email",
                    "requester_id": 7,
                    "requester": {"id": 7, "email": "ann.lee@example.org", "full_name": "Ann Lee"},
                    "assignee_id": 3,
                    "previous_ticket_id": None,
                    "cc": [],
                    "needs_triage": False,
                    "classification_state": "done",
                    "ai_category": "billing",
                    "ai_priority": "high",
                    "ai_confidence": 0.93,
                    "ai_model_version": "tfidf-svm-20261129141747-d01d6a1312-d2a597",
                    "language": "en",
                    "ai_explanation": ["charged twice", "invoice", "refund"],
                    "metadata": {},
                    "team_id": 2,
                    "team": {"id": 2, "name": "Billing"},
                    "tags": ["refund"],
                    "sla": {
                        "policy_id": 1,
                        "state": "ok",
                        "first_response_due_at": None,
                        "next_response_due_at": "2026-11-27T11:02:41Z",
                        "resolution_due_at": "2026-11-30T09:14:03Z",
                        "breached": [],
                    },
                    "created_at": "2026-11-27T09:14:03Z",
                    "updated_at": "2026-11-27T10:02:41Z",
                }
            ]
        },
    )

    id: int
    reference: str
    subject: str
    status: Status
    priority: Priority
    category: str | None
    channel: Channel
    requester_id: int
    requester: PersonRead
    assignee_id: int | None
    previous_ticket_id: int | None
    cc: list[str] = Field(description="addresses copied on the conversation; they may write too")
    needs_triage: bool
    classification_state: ClassificationState
    ai_category: str | None
    ai_priority: Priority | None
    ai_confidence: float | None
    ai_model_version: str | None
    language: str | None = Field(description="ISO 639-1, or null when unsure")
    # Never read from the ticket by model_validate (no such attribute): `seen_by` fills it for
    # staff, so a route that forgets the viewer shows clients nothing rather than too much.
    ai_explanation: list[str] | None = Field(
        None,
        validation_alias="staff_explanation",
        description="staff only: the terms that weighed most for ai_category (null for clients)",
    )
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("meta", "metadata"))
    team_id: int | None
    team: TeamRef | None
    tags: list[str] = Field(description="sorted, lower-case")
    # Filled by `seen_by` from the ticket's service-level columns (no such attribute).
    sla: SlaRead | None = Field(None, validation_alias="sla_read", description=SLA_HELP)
    created_at: datetime
    updated_at: datetime

    @classmethod
    def seen_by(cls, ticket: Any, role: Role) -> TicketRead:
        """The ticket as someone with `role` may read it: why it was classified is for staff."""
        # Load what may be lazy first: inside model_validate a database error (the server gone)
        # would become a ValidationError, which no caller takes for the outage it is.
        _ = (ticket.requester, ticket.team, ticket.tag_rows)
        read = cls.model_validate(ticket)
        if role is not Role.CLIENT:
            read.ai_explanation = ticket.ai_explanation
        read.sla = SlaRead.of(ticket)
        return read


class MessageCreate(BaseModel):
    # An internal note: sent as it stands from Swagger, a public reply would mail the customer.
    model_config = example(
        body="Checked with billing: the second charge is a duplicate, refund approved.",
        internal=True,
    )

    body: Body
    internal: bool = Field(False, description="an internal note: staff only, never mailed")


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool


class MessageRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 118,
                    "ticket_id": 42,
                    "author_id": 3,
                    "author": {
                        "id": 3,
                        "email": "maria.agent@example.com",
                        "full_name": "Maria Lopez",
                        "role": "AGENT",
                    },
                    "direction": "out",
                    "internal": False,
                    "body": "We have refunded the second charge.",
                    "full_body": "We have refunded the second charge.",
                    "html": None,
                    "message_id": "doxa.42.9b1f04c2a7e35d18.5c0e7a91d2f4b3a86e17@example.com",
                    "threaded_by": None,
                    "delivery_state": "sent",
                    "delivery_error": None,
                    "notes": [],
                    "created_at": "2026-11-27T10:02:41Z",
                    "attachments": [],
                }
            ]
        },
    )

    id: int
    ticket_id: int
    author_id: int | None
    author: AuthorRead | None = Field(description="null for automatic mail")
    direction: Direction
    internal: bool
    body: str
    full_body: str
    html: str | None
    message_id: str | None
    threaded_by: ThreadedBy | None
    delivery_state: DeliveryState | None
    # Never read by model_validate (no such attribute): `seen_by` fills it for staff. A relay's
    # answer can name hosts and rules of ours, and a client needs only the state.
    delivery_error: str | None = Field(
        None,
        validation_alias="staff_delivery_error",
        description="staff only: why it failed or was not sent (null for clients)",
    )
    notes: list[str]
    created_at: datetime
    attachments: list[AttachmentRead]

    @classmethod
    def seen_by(cls, message: Any, role: Role) -> MessageRead:
        """The message as someone with `role` may read it: delivery errors are for staff."""
        _ = (message.author, message.attachments)  # loaded first, as in TicketRead.seen_by
        read = cls.model_validate(message)
        if role is not Role.CLIENT:
            read.delivery_error = message.delivery_error
        return read


class ActorRead(BaseModel):
    type: ActorType
    id: int | None = Field(description="the user's or the rule's id; null for the system")
    name: str | None = Field(None, description="a rule's name, kept when the rule is deleted")


class EventRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 1207,
                    "type": "ticket.updated",
                    "created_at": "2026-11-27T10:02:41Z",
                    "ticket_id": 42,
                    "sequence": 4,
                    "actor": {"type": "user", "id": 3, "name": None},
                    "data": {
                        "id": 42,
                        "subject": "Invoice 2231 charged twice",
                        "status": "pending",
                        "priority": "high",
                        "changes": {"status": ["open", "pending"], "priority": ["normal", "high"]},
                    },
                }
            ]
        }
    )

    id: int
    type: str
    created_at: datetime
    ticket_id: int | None
    sequence: int | None = Field(description="rises per ticket, from 1, without gaps")
    actor: ActorRead
    data: dict[str, Any] = Field(
        description="the object after the change (the ticket, the message, the intake event) as"
        " the reader sees it through the API; for updates also `changes: {field: [before, after]}`"
    )

    @classmethod
    def seen_by(cls, event: Any, role: Role) -> EventRead:
        """The event as someone with `role` may read it: the stored data is staff's view; a
        client's has no `ai_*` fields and nothing staff-only (as TicketRead's and MessageRead's
        `seen_by`)."""
        data = dict(event.data or {})
        if event.changes is not None:
            data["changes"] = event.changes
        if role is Role.CLIENT:
            data = _for_client(data)
        actor = ActorRead(type=event.actor_type, id=event.actor_id, name=event.actor_name)
        return cls(
            id=event.id,
            type=event.type,
            created_at=event.created_at,
            ticket_id=event.ticket_id,
            sequence=event.sequence,
            actor=actor,
            data=data,
        )


# Fields `seen_by` leaves null for a client; an event's data shows them to staff only too.
STAFF_ONLY = ("ai_explanation", "delivery_error")


def _for_client(data: dict[str, Any]) -> dict[str, Any]:
    shown = {key: value for key, value in data.items() if not key.startswith("ai_")}
    shown.update((key, None) for key in STAFF_ONLY if key in shown)
    if isinstance(changes := shown.get("changes"), dict):
        shown["changes"] = {key: value for key, value in changes.items() if key in shown}
    return shown
