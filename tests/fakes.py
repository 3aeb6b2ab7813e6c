"""Test doubles that record what they were asked to do (fakes over mocks)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.core.messages import Button, Post, SentMessage
from bot.core.ports import DeliveryError


@dataclass
class Edit:
    channel: str
    message_id: str
    text: str
    buttons: tuple[Button, ...]


@dataclass
class FakeChatGateway:
    """A `ChatGateway` that records posts and edits. Queue failures with `fail_next` (each queued
    `DeliveryError` is raised by one `post`, in order) or set `forbidden` to refuse everything."""

    platform: str = "console"
    posts: list[Post] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    failures: list[DeliveryError] = field(default_factory=list)
    attempts: int = 0
    forbidden: bool = False
    #: Set whenever a post succeeds (for the one real-time test).
    posted: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, n: int, *, status: int = 500, retry_after: float | None = None) -> None:
        """Queue ``n`` failures: 429 (rate limited), 403 (no access) or a 5xx (nothing was created)."""
        for _ in range(n):
            if status == 403:
                err = DeliveryError("HTTP 403 Missing Access", retryable=False, forbidden=True)
            else:
                err = DeliveryError(
                    f"HTTP {status}", retryable=True, retry_after=retry_after, rate_limited=status == 429
                )
            self.failures.append(err)

    async def post(self, post: Post) -> SentMessage:
        self.attempts += 1
        if self.forbidden:
            raise DeliveryError("403 Missing Access", retryable=False, forbidden=True)
        if self.failures:
            raise self.failures.pop(0)
        self.posts.append(post)
        self.posted.set()
        return SentMessage(post.channel, f"m{next(self._ids)}")

    async def edit(
        self, channel: str, message_id: str, text: str, buttons: Sequence[Button] = (), *, group: str = ""
    ) -> None:
        if self.forbidden:
            raise DeliveryError("403 Missing Access", retryable=False, forbidden=True)
        self.edits.append(Edit(channel, message_id, text, tuple(buttons)))

    @property
    def questions(self) -> list[Post]:
        return [p for p in self.posts if "Question of the day" in p.text]

    @property
    def reveals(self) -> list[Post]:
        return [p for p in self.posts if "Answer reveal" in p.text]
