"""The real clock (tests use a fake one that implements the same `Clock` port)."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """`Clock` backed by the system time, always aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
