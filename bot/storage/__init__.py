"""SQLite implementation of the core's `Store` port."""

from bot.storage.sqlite_store import SqliteStore

__all__ = ["SqliteStore"]
