"""Database URLs: which store a URL means, its SQLite file, and a form safe to print. No I/O."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")


class UrlError(ValueError):
    """A database URL this studybot cannot use; the message is one line and never holds the password."""


def check_url(url: str) -> str:
    """The dialect of a database URL ("sqlite" or "postgres"); raises `UrlError` (one line, no secret)."""
    if url.startswith(SQLITE_PREFIX):
        if not url[len(SQLITE_PREFIX) :]:
            raise UrlError("a sqlite URL needs a file: sqlite:///data/studybot.db (or sqlite:////abs/path.db)")
        return "sqlite"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            raise UrlError("the PostgreSQL URL is malformed (bad port?): postgresql://user:pass@host:5432/db") from None
        if not parts.hostname or not parts.path.strip("/"):
            raise UrlError("a PostgreSQL URL needs a host and a database: postgresql://user:pass@host:5432/db")
        return "postgres"
    shown = f"{scheme}://…" if scheme else "that value"
    raise UrlError(f"{shown} is not a database URL studybot knows: use sqlite:///path or postgresql://…")


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL (``sqlite:///data/x.db`` is relative, ``sqlite:////x.db`` absolute)."""
    return Path(url[len(SQLITE_PREFIX) :])


def redact(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
