"""predictions.origin: where an answer was computed, "server" or "device" (the web page's offline mode)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("origin", sa.String(16), nullable=True))
    op.execute("UPDATE predictions SET origin = 'server'")  # every answer before this revision was the service's


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("origin")
