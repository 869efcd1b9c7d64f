"""Durable storage (SQLAlchemy 2 async; SQLite by default, PostgreSQL by URL).

Entry points: :func:`~openplatform.storage.database.open_database` /
:class:`~openplatform.storage.database.Database` (repositories ``.apps``,
``.users``, ``.tokens``, ``.consents``, ``.admin_tokens``) and
:func:`~openplatform.storage.migrate.upgrade` / ``upgrade_async``.
Submodules are imported where needed; this package module stays light so
that e.g. :mod:`openplatform.storage.crypto` imports cheaply.
"""
