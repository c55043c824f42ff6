"""The embedded record store: one SQLite file in WAL mode (``db``) and its schema
(``migrations``)."""
