"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "classifier_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("training_size", sa.Integer(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classifier_model")),
        sa.UniqueConstraint("version", name=op.f("uq_classifier_model_version")),
    )
    op.create_table(
        "classifier_category",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classifier_category")),
        sa.UniqueConstraint("name", name=op.f("uq_classifier_category_name")),
    )
    op.create_table(
        "training_example",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_example")),
    )
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=True),
        sa.Column(
            "role",
            sa.Enum("CLIENT", "AGENT", "ADMIN", name="role", native_enum=False, length=14),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("token_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("notifications", sa.JSON(), nullable=False),
        sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("email", name=op.f("uq_user_email")),
    )
    # Accounts: mailed sign-up and reset tokens (hashed), and the mail that carries them.
    op.create_table(
        "account_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum("verify", "reset", name="tokenpurpose", native_enum=False, length=14),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_token_token_hash")),
    )
    with op.batch_alter_table("account_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_token_email_purpose"), ["email", "purpose"], unique=False
        )
    op.create_table(
        "outbox_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "ticket_mail",
                "account_mail",
                "agent_mail",
                "webhook",
                name="outboxkind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "sent",
                "failed",
                "not_sent",
                name="deliverystate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_item")),
        sa.UniqueConstraint("kind", "ref_id", name=op.f("uq_outbox_item_kind_ref_id")),
    )
    with op.batch_alter_table("outbox_item", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_item_lease_until"), ["lease_until"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outbox_item_state_next_attempt_at"),
            ["state", "next_attempt_at"],
            unique=False,
        )
    op.create_table(
        "account_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "delivery_state",
            sa.Enum(
                "queued",
                "sent",
                "failed",
                "not_sent",
                name="deliverystate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("delivery_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["account_token.id"],
            name=op.f("fk_account_mail_token_id_account_token"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_mail")),
    )
    with op.batch_alter_table("account_mail", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_mail_delivery_state"), ["delivery_state"], unique=False
        )
    op.create_table(
        "account_network",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("signed_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_account_network_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "network", name=op.f("pk_account_network")),
    )
    # Routing, assignment and service levels: teams, rules, calendars and policies.
    op.create_table(
        "team",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=True),
        sa.Column(
            "assignment",
            sa.Enum(
                "manual",
                "round_robin",
                "least_open",
                name="assignment",
                native_enum=False,
                length=19,
            ),
            nullable=False,
        ),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("last_assignee_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_assignee_id"],
            ["user.id"],
            name=op.f("fk_team_last_assignee_id_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team")),
        sa.UniqueConstraint("mailbox", name=op.f("uq_team_mailbox")),
        sa.UniqueConstraint("name", name=op.f("uq_team_name")),
    )
    op.create_table(
        "team_member",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["team.id"], name=op.f("fk_team_member_team_id_team"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_team_member_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_team_member")),
    )
    with op.batch_alter_table("team_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_team_member_user_id"), ["user_id"], unique=False)

    op.create_table(
        "rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("when", sa.JSON(), nullable=False),
        sa.Column("then", sa.JSON(), nullable=False),
        sa.Column("stop", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule")),
    )
    with op.batch_alter_table("rule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rule_position"), ["position"], unique=False)

    op.create_table(
        "calendar",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("holidays", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar")),
    )
    op.create_table(
        "sla_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("when", sa.JSON(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=True),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("warn_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"], ["calendar.id"], name=op.f("fk_sla_policy_calendar_id_calendar")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policy")),
    )
    with op.batch_alter_table("sla_policy", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_policy_position"), ["position"], unique=False)

    op.create_table(
        "ticket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "new",
                "open",
                "pending",
                "resolved",
                "closed",
                name="status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "priority",
            sa.Enum(
                "low",
                "normal",
                "high",
                "urgent",
                name="priority",
                native_enum=False,
                length=14,
            ),
            nullable=False,
        ),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column(
            "channel",
            sa.Enum(
                "email",
                "form",
                "mailgun",
                "sendgrid",
                "postmark",
                "api",
                name="channel",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("mailbox", sa.String(length=320), nullable=True),
        sa.Column("pinned_category", sa.String(length=64), nullable=True),
        sa.Column("previous_ticket_id", sa.Integer(), nullable=True),
        sa.Column("cc", sa.JSON(), nullable=False),
        sa.Column("needs_triage", sa.Boolean(), nullable=False),
        sa.Column(
            "classification_state",
            sa.Enum(
                "pending",
                "done",
                "failed",
                name="classificationstate",
                native_enum=False,
                length=15,
            ),
            nullable=False,
        ),
        sa.Column("ai_category", sa.String(length=64), nullable=True),
        sa.Column(
            "ai_priority",
            sa.Enum(
                "low",
                "normal",
                "high",
                "urgent",
                name="priority",
                native_enum=False,
                length=14,
            ),
            nullable=True,
        ),
        sa.Column("ai_confidence", sa.Double(), nullable=True),
        sa.Column("ai_priority_confidence", sa.Double(), nullable=True),
        sa.Column("ai_model_version", sa.String(length=64), nullable=True),
        sa.Column("ai_explanation", sa.JSON(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("text_vector", sa.LargeBinary(), nullable=True),
        sa.Column("classification_attempts", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("note_text", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.Column("event_sequence", sa.Integer(), nullable=False),
        sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("staff_routed", sa.Boolean(), nullable=False),
        sa.Column("sla_policy_id", sa.Integer(), nullable=True),
        sa.Column(
            "sla_state",
            sa.Enum(
                "ok",
                "warning",
                "breached",
                "paused",
                "met",
                name="slastate",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_alarm_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_breached", sa.JSON(), nullable=False),
        sa.Column("sla_warned", sa.JSON(), nullable=False),
        sa.Column("sla_paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("awaiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["user.id"], name=op.f("fk_ticket_assignee_id_user")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["team.id"], name=op.f("fk_ticket_team_id_team"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["sla_policy_id"], ["sla_policy.id"], name=op.f("fk_ticket_sla_policy_id_sla_policy")
        ),
        sa.ForeignKeyConstraint(
            ["previous_ticket_id"],
            ["ticket.id"],
            name=op.f("fk_ticket_previous_ticket_id_ticket"),
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["user.id"], name=op.f("fk_ticket_requester_id_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket")),
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_assignee_id_id"), ["assignee_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ticket_category_id"), ["category", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_channel_id"), ["channel", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ticket_classification_state_id"),
            ["classification_state", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_needs_triage_id"),
            ["needs_triage", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_ticket_priority_id"), ["priority", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ticket_requester_id_id"),
            ["requester_id", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_ticket_status_id"), ["status", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ticket_assignee_id_status"), ["assignee_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_routed_at_created_at"), ["routed_at", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ticket_sla_alarm_at"), ["sla_alarm_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ticket_sla_due_at_id"), ["sla_due_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_sla_state_id"), ["sla_state", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ticket_team_id_id"), ["team_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ticket_team_id_assignee_id_status"),
            ["team_id", "assignee_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_team_id_sla_due_at_id"),
            ["team_id", "sla_due_at", "id"],
            unique=False,
        )

    op.create_table(
        "classification_correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("field", sa.String(length=16), nullable=False),
        sa.Column("predicted", sa.String(length=64), nullable=True),
        sa.Column("corrected", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["user.id"],
            name=op.f("fk_classification_correction_actor_id_user"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_classification_correction_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classification_correction")),
    )
    with op.batch_alter_table("classification_correction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_classification_correction_ticket_id"),
            ["ticket_id"],
            unique=False,
        )

    op.create_table(
        "intake_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "email",
                "form",
                "mailgun",
                "sendgrid",
                "postmark",
                "api",
                name="channel",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=998), nullable=True),
        sa.Column("dedupe_key", sa.String(length=128), nullable=True),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("mailbox", sa.String(length=320), nullable=True),
        sa.Column("envelope_from", sa.String(length=320), nullable=True),
        sa.Column("envelope_to", sa.JSON(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("authenticated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "ticket_created",
                "followup",
                "duplicate",
                "held",
                "rejected",
                "failed",
                name="intakestatus",
                native_enum=False,
                length=22,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["released_by_id"],
            ["user.id"],
            name=op.f("fk_intake_event_released_by_id_user"),
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["intake_event.id"],
            name=op.f("fk_intake_event_duplicate_of_id_intake_event"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_intake_event_ticket_id_ticket"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_event")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_intake_event_dedupe_key")),
    )
    with op.batch_alter_table("intake_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_event_sender_received_at"),
            ["sender", "received_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_intake_event_status_id"), ["status", "id"], unique=False
        )

    op.create_table(
        "intake_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("intake_event_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["intake_event_id"],
            ["intake_event.id"],
            name=op.f("fk_intake_key_intake_event_id_intake_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_key")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_intake_key_scope_key")),
    )
    with op.batch_alter_table("intake_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_key_created_at"), ["created_at"], unique=False)

    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column(
            "actor_type",
            sa.Enum("user", "rule", "system", name="actortype", native_enum=False, length=14),
            nullable=False,
        ),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("xact", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_event_ticket_id_ticket"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint("ticket_id", "sequence", name=op.f("uq_event_ticket_id_sequence")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_type_id"), ["type", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_xact_id"), ["xact", "id"], unique=False)

    op.create_table(
        "event_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("xact", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_cursor")),
    )
    # Agents' mail notifications (issue 22): one mail per agent and ticket a minute.
    op.create_table(
        "agent_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "queued",
                "sent",
                "failed",
                "not_sent",
                name="noticestate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("delivery_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_agent_notice_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_agent_notice_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_notice")),
        sa.UniqueConstraint("message_id", name=op.f("uq_agent_notice_message_id")),
    )
    with op.batch_alter_table("agent_notice", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agent_notice_state_due_at"), ["state", "due_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_agent_notice_user_id_queued_at"), ["user_id", "queued_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_agent_notice_user_id_ticket_id_state"),
            ["user_id", "ticket_id", "state"],
            unique=False,
        )

    op.create_table(
        "stream_ticket",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_stream_ticket_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_stream_ticket")),
    )
    with op.batch_alter_table("stream_ticket", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stream_ticket_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_stream_ticket_user_id"), ["user_id"], unique=False)

    op.create_table(
        "webhook",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("include_internal", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("previous_secret", sa.String(length=64), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook")),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "delivered",
                "failed",
                name="webhookdeliverystate",
                native_enum=False,
                length=17,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["event.id"],
            name=op.f("fk_webhook_delivery_event_id_event"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhook.id"],
            name=op.f("fk_webhook_delivery_webhook_id_webhook"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_delivery_event_id"), ["event_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_delivery_webhook_id_id"), ["webhook_id", "id"], unique=False
        )

    op.create_table(
        "ticket_tag",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_ticket_tag_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "tag", name=op.f("pk_ticket_tag")),
    )
    with op.batch_alter_table("ticket_tag", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_tag_tag_ticket_id"), ["tag", "ticket_id"], unique=False
        )

    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column(
            "direction",
            sa.Enum("in", "out", name="direction", native_enum=False, length=11),
            nullable=False,
        ),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("full_body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("in_reply_to", sa.String(length=998), nullable=True),
        sa.Column(
            "threaded_by",
            sa.Enum(
                "references",
                "subject_token",
                "plus_address",
                "new",
                name="threadedby",
                native_enum=False,
                length=21,
            ),
            nullable=True,
        ),
        sa.Column(
            "delivery_state",
            sa.Enum(
                "queued",
                "sent",
                "failed",
                "not_sent",
                name="deliverystate",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("delivery_error", sa.Text(), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column("recipient_key", sa.String(length=320), nullable=True),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("intake_event_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["user.id"], name=op.f("fk_message_author_id_user")),
        sa.ForeignKeyConstraint(
            ["intake_event_id"],
            ["intake_event.id"],
            name=op.f("fk_message_intake_event_id_intake_event"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_message_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_direction_created_at"), ["direction", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_message_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_id", sa.String(length=998), nullable=True),
        sa.Column("inline", sa.Boolean(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_attachment_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
    )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_message_id"), ["message_id"], unique=False)
    _create_search_index()
    _compress_blobs_with_lz4()


def downgrade() -> None:
    _drop_search_index()
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_message_id"))

    op.drop_table("attachment")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_message_message_id"))
        batch_op.drop_index(batch_op.f("ix_message_direction_created_at"))

    op.drop_table("message")
    with op.batch_alter_table("ticket_tag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_tag_tag_ticket_id"))

    op.drop_table("ticket_tag")
    with op.batch_alter_table("stream_ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stream_ticket_user_id"))
        batch_op.drop_index(batch_op.f("ix_stream_ticket_expires_at"))

    op.drop_table("stream_ticket")
    with op.batch_alter_table("agent_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_notice_user_id_ticket_id_state"))
        batch_op.drop_index(batch_op.f("ix_agent_notice_user_id_queued_at"))
        batch_op.drop_index(batch_op.f("ix_agent_notice_state_due_at"))

    op.drop_table("agent_notice")
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_webhook_id_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_event_id"))

    op.drop_table("webhook_delivery")
    op.drop_table("webhook")
    op.drop_table("event_cursor")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_xact_id"))
        batch_op.drop_index(batch_op.f("ix_event_type_id"))

    op.drop_table("event")
    with op.batch_alter_table("intake_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_key_created_at"))

    op.drop_table("intake_key")
    with op.batch_alter_table("intake_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_event_status_id"))
        batch_op.drop_index(batch_op.f("ix_intake_event_sender_received_at"))

    op.drop_table("intake_event")
    with op.batch_alter_table("classification_correction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_classification_correction_ticket_id"))

    op.drop_table("classification_correction")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_status_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_requester_id_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_priority_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_needs_triage_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_classification_state_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_channel_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_category_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_assignee_id_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_assignee_id_status"))
        batch_op.drop_index(batch_op.f("ix_ticket_routed_at_created_at"))
        batch_op.drop_index(batch_op.f("ix_ticket_sla_alarm_at"))
        batch_op.drop_index(batch_op.f("ix_ticket_sla_due_at_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_sla_state_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_team_id_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_team_id_assignee_id_status"))
        batch_op.drop_index(batch_op.f("ix_ticket_team_id_sla_due_at_id"))

    op.drop_table("ticket")
    with op.batch_alter_table("sla_policy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_policy_position"))

    op.drop_table("sla_policy")
    op.drop_table("calendar")
    with op.batch_alter_table("rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_position"))

    op.drop_table("rule")
    with op.batch_alter_table("team_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_team_member_user_id"))

    op.drop_table("team_member")
    op.drop_table("team")
    with op.batch_alter_table("outbox_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_item_state_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_outbox_item_lease_until"))

    op.drop_table("outbox_item")
    with op.batch_alter_table("account_mail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_mail_delivery_state"))

    op.drop_table("account_mail")
    op.drop_table("account_network")
    with op.batch_alter_table("account_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_token_email_purpose"))

    op.drop_table("account_token")
    op.drop_table("user")
    op.drop_table("training_example")
    op.drop_table("classifier_category")
    op.drop_table("classifier_model")


# Full-text search over ticket.search_text (subject and public messages) and ticket.note_text
# (internal notes), both kept by tickets.service.add_text; tickets.search reads them.
# Both backends see the same words: runs of letters and digits, case and accents folded, so
# "ORD-123" and "jane@example.com" are phrases of plain words on either.
_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE ticket_fts USING fts5(search_text, note_text, content='ticket', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER ticket_fts_insert AFTER INSERT ON ticket BEGIN "
    "INSERT INTO ticket_fts(rowid, search_text, note_text) "
    "VALUES (new.id, new.search_text, new.note_text); END",
    "CREATE TRIGGER ticket_fts_delete AFTER DELETE ON ticket BEGIN "
    "INSERT INTO ticket_fts(ticket_fts, rowid, search_text, note_text) "
    "VALUES ('delete', old.id, old.search_text, old.note_text); END",
    "CREATE TRIGGER ticket_fts_update AFTER UPDATE OF search_text, note_text ON ticket BEGIN "
    "INSERT INTO ticket_fts(ticket_fts, rowid, search_text, note_text) "
    "VALUES ('delete', old.id, old.search_text, old.note_text); "
    "INSERT INTO ticket_fts(rowid, search_text, note_text) "
    "VALUES (new.id, new.search_text, new.note_text); END",
]
# PostgreSQL: one vector, public words weighted A and internal notes' words D, so a client's
# query (every term :A) never matches a note. Non-alphanumerics become spaces first, as FTS5's
# unicode61 treats them ([[:alnum:]] needs a UTF-8 LC_CTYPE, e.g. C.UTF-8 or en_US.UTF-8).
_PG_WORDS = "regexp_replace({column}, '[^[:alnum:]]+', ' ', 'g')"
_PG_VECTOR = (
    "setweight(to_tsvector('doxa_search'::regconfig, {public}), 'A') || "
    "setweight(to_tsvector('doxa_search'::regconfig, {notes}), 'D')"
).format(public=_PG_WORDS.format(column="search_text"), notes=_PG_WORDS.format(column="note_text"))
_PG_WORD_KINDS = "asciiword, word, numword, int, uint, float, sfloat"
_PG_SEARCH = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE TEXT SEARCH CONFIGURATION doxa_search (COPY = simple)",
    f"ALTER TEXT SEARCH CONFIGURATION doxa_search ALTER MAPPING FOR {_PG_WORD_KINDS} "
    "WITH unaccent, simple",
    # A stored vector, not an expression index: matching rows are then checked without
    # re-parsing each ticket's text, which the planner underestimates badly.
    f"ALTER TABLE ticket ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({_PG_VECTOR}) "
    "STORED",
    "CREATE INDEX ix_ticket_search_vector ON ticket USING gin (search_vector)",
    # Adjacent word pairs ("shingles"), so a phrase is looked up by its pairs: the GIN index
    # keeps no positions, and a phrase of words that share many tickets but never stand
    # together had every such ticket rechecked (about 1.5 s at a million). A pair is "~a b",
    # which no word or word prefix can match; pairs of long words (over 60 bytes) are left out
    # on both sides; a ticket with over 10,000 pairs (a tsvector holds 1 MB) keeps "~" instead,
    # which every phrase query also accepts. tickets.search asks the same function for a
    # phrase's pairs. PL/pgSQL, whose plan is kept per connection: a SQL function was planned
    # again for each row written (+0.85 ms a ticket against +0.18 ms). Its body names nothing
    # outside pg_catalog, so it needs no search_path (a restore runs with an empty one).
    """CREATE FUNCTION doxa_pair_vector(public tsvector, notes tsvector) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
        pairs text[];
    BEGIN
        SELECT array_agg('~' || lexeme || ' ' || next_lexeme) INTO pairs
        FROM (
            SELECT lexeme, position,
                lead(lexeme) OVER by_position AS next_lexeme,
                lead(position) OVER by_position AS next_position
            FROM (
                SELECT 1 AS part, lexeme, unnest(positions) AS position FROM unnest(public)
                UNION ALL
                SELECT 2, lexeme, unnest(positions) FROM unnest(notes)
            ) AS word
            WINDOW by_position AS (PARTITION BY part ORDER BY position)
        ) AS pair
        WHERE next_position = position + 1
            AND octet_length(lexeme) + octet_length(next_lexeme) <= 60;
        IF cardinality(pairs) > 10000 THEN
            RETURN '~'::tsvector;
        END IF;
        RETURN array_to_tsvector(coalesce(pairs, '{}'));
    END
    $$""",
    "ALTER TABLE ticket ADD COLUMN search_pairs tsvector GENERATED ALWAYS AS "
    "(doxa_pair_vector(to_tsvector('doxa_search'::regconfig, {public}), "
    "to_tsvector('doxa_search'::regconfig, {notes}))) STORED".format(
        public=_PG_WORDS.format(column="search_text"), notes=_PG_WORDS.format(column="note_text")
    ),
    "CREATE INDEX ix_ticket_search_pairs ON ticket USING gin (search_pairs)",
]


def _create_search_index() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_SEARCH if postgresql else _SQLITE_FTS:
        op.execute(statement)


def _drop_search_index() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in ("search_pairs", "search_vector"):
            op.execute(f"DROP INDEX IF EXISTS ix_ticket_{column}")
            op.execute(f"ALTER TABLE ticket DROP COLUMN IF EXISTS {column}")
        op.execute("DROP FUNCTION IF EXISTS doxa_pair_vector(tsvector, tsvector)")
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS doxa_search")
    else:
        for name in ("ticket_fts_insert", "ticket_fts_delete", "ticket_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS ticket_fts")


# PostgreSQL's default TOAST compression (pglz) cost about 3x the CPU of lz4 on the SMTP
# benchmark's mail (1.29 s against 0.44 s for 400 messages, 60 MiB) while every SMTP commit
# waits on it. A server built without lz4 keeps pglz.
_LZ4_COLUMNS = (("intake_event", "raw"), ("attachment", "content"))


def _compress_blobs_with_lz4() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _LZ4_COLUMNS:
        op.execute(f"""
            DO $$ BEGIN
                ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4;
            EXCEPTION WHEN feature_not_supported THEN
                RAISE NOTICE 'lz4 not supported here; {table}.{column} keeps the default';
            END $$""")
