"""Alembic environment: the engine comes from the studio (``db.alembic_config``)."""

from alembic import context

from segflow.studio.tables import Base

config = context.config
engine = config.attributes["engine"]
with engine.connect() as conn:
    if conn.dialect.name == "sqlite":
        # A batch migration copies a table and drops the original; with foreign keys on, the
        # drop would delete (ON DELETE CASCADE) every row that references it. Off while
        # migrating (a no-op inside a transaction, so before the first statement).
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    conn.commit()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
