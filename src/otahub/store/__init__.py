"""Persistence: SQLAlchemy tables, the database handle, migrations and the SQL of the core."""
