"""Slack in many workspaces: slack-bolt's installation and OAuth state stores, kept in our database.

slack-bolt's OAuth flow (``/slack/install`` → Slack → ``/slack/oauth_redirect``) saves each workspace's
installation through `DbInstallationStore`, and bolt's authorisation reads it back for every request, so
each workspace's commands run with its own bot token. `DbStateStore` hands out the ``state`` that ties the
redirect to the browser that started the install: each is accepted once, before it expires, so a forged or
replayed redirect installs nothing. Both translate to the `InstallStore` port; the rows live beside the
rest of the bot's data (SQLite or PostgreSQL), so every bot process sees every installation.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from logging import Logger
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.core.ports import InstallStore

log = logging.getLogger(__name__)

PLATFORM = "slack"
#: How long an install may take from /slack/install to the redirect (slack-bolt's default too).
STATE_SECONDS = 600


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _key(enterprise_id: str | None, team_id: str | None) -> str:
    """The row key: the workspace; an org-wide (Enterprise Grid) install, which has none, is keyed by its org."""
    return team_id or enterprise_id or ""


def dump_installation(installation: Installation) -> str:
    """JSON for an installation; times as Unix timestamps, which `load_installation` reads back."""
    data: dict[str, Any] = installation.to_dict_for_copying()
    for name, value in data.items():
        if isinstance(value, datetime):
            data[name] = value.timestamp()
    return json.dumps(data)


def load_installation(text: str) -> Installation:
    data = json.loads(text)
    for name in ("bot_token_expires_at", "user_token_expires_at"):
        if data.get(name) is not None:
            data[name] = int(data[name])
    return Installation(**data)


class DbInstallationStore(AsyncInstallationStore):
    """slack-sdk's `AsyncInstallationStore` on our `InstallStore`: one installation per workspace (the
    latest install wins). Raises what the store raises (`StoreError`)."""

    def __init__(self, store: InstallStore, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.store = store
        self._now = now

    @property
    def logger(self) -> Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        key = _key(installation.enterprise_id, None if installation.is_enterprise_install else installation.team_id)
        await self.store.save_installation(PLATFORM, key, dump_installation(installation), self._now())
        # Names only: the installation holds the tokens.
        log.info("slack: installed in workspace %s (%s)", installation.team_id, installation.team_name or "")

    async def async_save_bot(self, bot: Bot) -> None:
        """Store a refreshed bot token (token rotation) in the workspace's installation."""
        found = await self._find(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        if found is None:
            return
        found.bot_token = bot.bot_token
        found.bot_refresh_token = bot.bot_refresh_token
        found.bot_token_expires_at = bot.bot_token_expires_at
        await self.async_save(found)

    async def _find(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None
    ) -> Installation | None:
        key = _key(enterprise_id, None if is_enterprise_install else team_id)
        text = await self.store.find_installation(PLATFORM, key)
        return load_installation(text) if text is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        if found is None or (user_id is not None and found.user_id != user_id):
            return None  # only the installer's own record carries a user token
        return found

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        return found.to_bot() if found is not None and found.bot_token else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        # Without its bot token the installation is of no use: forget it.
        if await self.store.delete_installation(PLATFORM, _key(enterprise_id, team_id)):
            log.info("slack: bot token revoked in workspace %s; installation deleted", team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is not None:  # one user's token was revoked: drop it, keep the bot's
            found = await self._find(enterprise_id, team_id, team_id is None)
            if found is not None and found.user_id == user_id and found.user_token:
                found.user_token = found.user_refresh_token = None
                found.user_token_expires_at = None
                await self.async_save(found)
            return
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """The app was uninstalled from the workspace."""
        if await self.store.delete_installation(PLATFORM, _key(enterprise_id, team_id)):
            log.info("slack: uninstalled from workspace %s; installation deleted", team_id)


class DbStateStore(AsyncOAuthStateStore):
    """One-time OAuth ``state`` values in our `InstallStore`: `async_consume` is true once per issued
    state, within ``expiration_seconds``. Raises what the store raises (`StoreError`)."""

    def __init__(
        self, store: InstallStore, *, expiration_seconds: int = STATE_SECONDS, now: Callable[[], datetime] = _utcnow
    ) -> None:
        self.store = store
        self.expiration_seconds = expiration_seconds
        self._now = now

    @property
    def logger(self) -> Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        await self.store.issue_oauth_state(state, self._now() + timedelta(seconds=self.expiration_seconds))
        return state

    async def async_consume(self, state: str) -> bool:
        if not state or len(state) > 200:
            ok = False
        else:
            ok = await self.store.consume_oauth_state(state, self._now())
        if not ok:
            log.warning("slack: refused an install redirect whose state is unknown, used or expired")
        return ok
