"""stories: several alerts per story (first, update, spread), the story-key index, feed warnings

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("story") as batch_op:
        batch_op.add_column(sa.Column("rules", sa.Text(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("priority", sa.String(length=10), nullable=True))
    with op.batch_alter_table("item") as batch_op:
        batch_op.add_column(sa.Column("sketch", sa.Text(), nullable=True))
    with op.batch_alter_table("feed_state") as batch_op:
        batch_op.add_column(sa.Column("warning", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("warning_at", UTCDateTime(), nullable=True))
    op.create_table(
        "story_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_story_key_at", "story_key", ["key", "at"], unique=False)
    # The one-alert-per-story constraint becomes one alert per story, kind and reason. Stories that alerted
    # before keep their rules and priority, so a later item escalates them as it would a new one.
    naming = {"uq": "%(table_name)s_%(column_0_name)s_key"}
    with op.batch_alter_table("alert", naming_convention=naming) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=10), nullable=False, server_default="first"))
        batch_op.add_column(sa.Column("reason", sa.String(length=500), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))
        batch_op.drop_constraint("alert_story_id_key", type_="unique")
        batch_op.create_unique_constraint("uq_alert_story_kind", ["story_id", "kind", "reason"])
    op.execute(
        "UPDATE story SET rules = (SELECT alert.rules FROM alert WHERE alert.story_id = story.id),"
        " priority = (SELECT alert.priority FROM alert WHERE alert.story_id = story.id)"
        " WHERE EXISTS (SELECT 1 FROM alert WHERE alert.story_id = story.id)"
    )


def downgrade() -> None:
    naming = {"uq": "%(table_name)s_%(column_0_name)s_key"}
    with op.batch_alter_table("alert", naming_convention=naming) as batch_op:
        batch_op.drop_constraint("uq_alert_story_kind", type_="unique")
        batch_op.drop_column("note")
        batch_op.drop_column("reason")
        batch_op.drop_column("kind")
        batch_op.create_unique_constraint("alert_story_id_key", ["story_id"])
    op.drop_index("ix_story_key_at", table_name="story_key")
    op.drop_table("story_key")
    with op.batch_alter_table("feed_state") as batch_op:
        batch_op.drop_column("warning_at")
        batch_op.drop_column("warning")
    with op.batch_alter_table("item") as batch_op:
        batch_op.drop_column("sketch")
    with op.batch_alter_table("story") as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("rules")
