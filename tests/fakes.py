"""Test doubles that record what they were asked to do (fakes over mocks)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    `DeliveryError` is raised by one `post`, in order; ``after_create``: the post is made, then the error
    raised, like a 500 on a message that was in fact created) or set `forbidden` to refuse everything.
    `find` looks through what was posted by key, as a platform's channel history would."""

    platform: str = "console"
    posts: list[Post] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    failures: list[tuple[DeliveryError, bool]] = field(default_factory=list)
    #: Message id of each posted key (what `find` sees).
    sent_keys: dict[str, str] = field(default_factory=dict)
    finds: int = 0
    attempts: int = 0
    forbidden: bool = False
    #: Set whenever a post succeeds (for the one real-time test).
    posted: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(
        self, n: int, *, status: int = 500, retry_after: float | None = None, after_create: bool = False
    ) -> None:
        """Queue ``n`` failures: 429 (rate limited), 403 (no access) or a 5xx (nothing was created, unless
        ``after_create``)."""
        for _ in range(n):
            if status == 403:
                err = DeliveryError("HTTP 403 Missing Access", retryable=False, forbidden=True)
            else:
                err = DeliveryError(
                    f"HTTP {status}",
                    retryable=True,
                    retry_after=retry_after,
                    rate_limited=status == 429,
                    maybe_sent=status >= 500 and after_create,
                )
            self.failures.append((err, after_create))

    async def post(self, post: Post) -> SentMessage:
        self.attempts += 1
        if self.forbidden:
            raise DeliveryError("403 Missing Access", retryable=False, forbidden=True)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None and not failure[1]:
            raise failure[0]
        self.posts.append(post)
        message_id = f"m{next(self._ids)}"
        if post.key is not None:
            self.sent_keys[post.key] = message_id
        self.posted.set()
        if failure is not None:
            raise failure[0]
        return SentMessage(post.channel, message_id)

    async def find(self, post: Post, since: datetime) -> str | None:
        self.finds += 1
        return self.sent_keys.get(post.key) if post.key is not None else None

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


@dataclass
class FakeDirectGateway(FakeChatGateway):
    """A `FakeChatGateway` that also sends direct messages (`bot.core.reminders.DirectGateway`), recording
    each with the fake clock's time when one is given. ``closed``: users whose DMs are closed (50007);
    `fail_next` queues failures for DMs as for posts."""

    dms: list[tuple[str, Post]] = field(default_factory=list)
    sent_at: list[datetime] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    clock: Any = None

    async def send_direct(self, user: str, post: Post) -> SentMessage:
        self.attempts += 1
        if user in self.closed:
            raise DeliveryError("403 Cannot send messages to this user (50007)", retryable=False, forbidden=True)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure[0]
        self.dms.append((user, post))
        if self.clock is not None:
            self.sent_at.append(self.clock.now())
        return SentMessage("D" + user, f"dm{next(self._ids)}")

    def to(self, user: str) -> list[Post]:
        return [p for u, p in self.dms if u == user]
