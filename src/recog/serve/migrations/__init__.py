"""The history store's Alembic migrations (run by `recog.serve.migrate`; no alembic.ini needed)."""
