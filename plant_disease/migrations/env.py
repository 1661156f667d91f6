"""Alembic environment for the prediction log.

The URL comes from `-x url=...` on the command line, else from the config's `sqlalchemy.url`, which
`plant_disease.predlog.upgrade(url)` sets programmatically. Importing `plant_disease.predlog` also registers the
`postgresql+pyodbc` dialect.
"""

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from plant_disease.predlog import metadata

config = context.config
if config.config_file_name and config.file_config.has_section("loggers"):  # the alembic CLI, not upgrade()
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata
url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    "Emit the SQL to stdout (`alembic upgrade head --sql`) instead of running it."
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, dialect_opts={"paramstyle": "named"}
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
