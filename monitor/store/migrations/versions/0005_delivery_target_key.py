"""delivery.target: the target's key (a digest of its URL as written in channels.toml), not its position;
feed_state.gaps: polls that found every entry of a feed new (a possible gap); feed URLs without passwords
(the service now stores a feed's URL as written, `${VAR}`s unexpanded; a password stored before is masked)

Before, a delivery named its target by position in the channel's `urls`: removing one URL moved the next into
its place, and pending deliveries went to the wrong target under a new idempotency key. Rows written before
keep their position as text ("0", "1"); the service still reads those by position.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feed_state", sa.Column("gaps", sa.Integer(), nullable=False, server_default="0"))
    connection = op.get_bind()
    for feed_id, config_url, url in connection.execute(sa.text("SELECT id, config_url, url FROM feed")).all():
        masked = (_masked(str(config_url)), _masked(str(url)))
        if masked != (config_url, url):
            connection.execute(
                sa.text("UPDATE feed SET config_url = :c, url = :u WHERE id = :i"),
                {"c": masked[0], "u": masked[1], "i": feed_id},
            )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.alter_column(
            "target",
            existing_type=sa.Integer(),
            type_=sa.String(length=20),
            existing_nullable=False,
            postgresql_using="target::text",
        )


def downgrade() -> None:
    with op.batch_alter_table("feed_state", schema=None) as batch_op:
        batch_op.drop_column("gaps")
    # Keys cannot become positions again: rows by key are cancelled if pending, and take a negative number
    # of their own (unique, and no position) so the history stays.
    op.execute("UPDATE delivery SET status = 'cancelled' WHERE status = 'pending' AND target LIKE 't%'")
    op.execute("UPDATE delivery SET target = CAST(-id AS VARCHAR(20)) WHERE target LIKE 't%'")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.alter_column(
            "target",
            existing_type=sa.String(length=20),
            type_=sa.Integer(),
            existing_nullable=False,
            postgresql_using="target::integer",
        )


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"))
