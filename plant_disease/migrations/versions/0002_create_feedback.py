"""create the feedback table: reviewers' verdicts on the answers of the prediction log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(128), nullable=True),
        sa.Column("source", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index(op.f("ix_feedback_created_at"), "feedback", ["created_at"], unique=False)
    op.create_index(op.f("ix_feedback_request_id"), "feedback", ["request_id"], unique=False)
    op.create_index(op.f("ix_feedback_image_sha256"), "feedback", ["image_sha256"], unique=False)
    op.create_index(op.f("ix_predictions_image_sha256"), "predictions", ["image_sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_predictions_image_sha256"), table_name="predictions")
    op.drop_index(op.f("ix_feedback_image_sha256"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_request_id"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_created_at"), table_name="feedback")
    op.drop_table("feedback")
