"""item: an index on (feed_id, id), so a feed's newest keys are a range read however long it has run

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_item_feed_recent", "item", ["feed_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_item_feed_recent", table_name="item")
