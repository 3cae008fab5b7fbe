"""Alembic environment: the engine comes from the studio (``db.alembic_config``)."""

from alembic import context

from segflow.studio.tables import Base

config = context.config
engine = config.attributes["engine"]
with engine.begin() as conn:
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
