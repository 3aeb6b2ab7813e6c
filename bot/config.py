"""Settings: the only module that reads the environment (and `.env`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_CONTENT = ROOT / "content"
# Beside the package in a source tree; an installed package (the Docker image) sets STUDYBOT_MIGRATIONS.
BUNDLED_MIGRATIONS = ROOT / "migrations"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


#: The platforms an entry of ``STUDYBOT_OWNERS`` may name (``discord:<id>``, ``slack:<id>``).
OWNER_PLATFORMS = ("discord", "slack")
_USER_ID = re.compile(r"[A-Za-z0-9]{1,32}")


def _entries(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


class Settings(BaseSettings):
    """Every setting, named by its environment variable. Secrets are `SecretStr` and never printed."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=False,
    )

    db: Path = Field(Path("data/studybot.db"), validation_alias=_env("STUDYBOT_DB"))
    #: sqlite:///path or postgresql://user:pass@host:port/db; unset means sqlite:/// + STUDYBOT_DB.
    database_url: SecretStr | None = Field(None, validation_alias=_env("STUDYBOT_DATABASE_URL"))
    content: Path = Field(BUNDLED_CONTENT, validation_alias=_env("STUDYBOT_CONTENT"))
    migrations: Path = Field(BUNDLED_MIGRATIONS, validation_alias=_env("STUDYBOT_MIGRATIONS"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias=_env("STUDYBOT_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("STUDYBOT_LOG_FORMAT"))
    catchup_hours: float = Field(6.0, ge=0, le=168, validation_alias=_env("STUDYBOT_CATCHUP_HOURS"))
    #: Progress charts drawn at the same time, each by a worker process of its own (~85 MB each; a second
    #: one starts only while two charts are wanted at once, and stops after a minute without one). Never
    #: more than the machine's cores.
    chart_workers: int = Field(2, ge=1, le=16, validation_alias=_env("STUDYBOT_CHART_WORKERS"))
    #: The bot's HTTP server (Slack's HTTP mode, the web dashboard). Loopback unless told otherwise (the
    #: Docker image sets 0.0.0.0); port 0 picks a free port (tests).
    http_host: str = Field("127.0.0.1", validation_alias=_env("STUDYBOT_HTTP_HOST"))
    http_port: int = Field(3000, ge=0, le=65535, validation_alias=_env("STUDYBOT_HTTP_PORT"))
    #: Where people reach that server (behind a proxy: https://bot.example.org); dashboard links are built
    #: from it. Unset: http://<STUDYBOT_HTTP_HOST>:<port>, which opens on this machine.
    public_url: str | None = Field(None, validation_alias=_env("STUDYBOT_PUBLIC_URL"))

    discord_token: SecretStr | None = Field(None, validation_alias=_env("DISCORD_TOKEN"))
    discord_guild: int | None = Field(None, gt=0, validation_alias=_env("STUDYBOT_DISCORD_GUILD"))
    discord_application_id: int | None = Field(None, gt=0, validation_alias=_env("DISCORD_APPLICATION_ID"))
    #: Sharding: a shard count ("auto": ask Discord for its recommendation) and the shards this process
    #: runs (empty: all of them). Several processes with disjoint ids split the guilds between them.
    discord_shards: int | Literal["auto"] | None = Field(None, validation_alias=_env("STUDYBOT_DISCORD_SHARDS"))
    discord_shard_ids: str = Field("", validation_alias=_env("STUDYBOT_DISCORD_SHARD_IDS"))
    #: Channel posts per second by this process; Discord allows 50 REST requests/s per bot in all, so
    #: processes that post for one bot token split 48 between them (README "Scaling out").
    discord_posts_per_second: float = Field(
        48.0, gt=0, le=50, validation_alias=_env("STUDYBOT_DISCORD_POSTS_PER_SECOND")
    )

    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("SLACK_API_URL"))
    slack_admins: str = Field("", validation_alias=_env("STUDYBOT_SLACK_ADMINS"))
    #: Many workspaces: the app's OAuth credentials; each workspace installs through /slack/install.
    slack_client_id: str | None = Field(None, validation_alias=_env("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_CLIENT_SECRET"))
    slack_redirect_uri: str | None = Field(None, validation_alias=_env("SLACK_REDIRECT_URI"))
    owners: str = Field("", validation_alias=_env("STUDYBOT_OWNERS"))

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _fold(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        return v.strip().upper() if v.strip().upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else v.strip().lower()

    @field_validator("slack_api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return v if v.endswith("/") else v + "/"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v.strip())
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "must be the http(s) URL people open the bot's web server at, e.g. https://bot.example.org"
            )
        return v.strip().rstrip("/")

    @field_validator("slack_redirect_uri")
    @classmethod
    def _redirect(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError(
                "must be the https URL of /slack/oauth_redirect, e.g. https://bot.example.org/slack/oauth_redirect"
            )
        return v

    @model_validator(mode="after")
    def _slack_mode(self) -> Settings:
        # The messages name the variables themselves (a model-level error has no field to name).
        if (self.slack_client_id is None) != (self.slack_client_secret is None):
            raise ValueError(
                "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together (Basic Information → App Credentials): "
                "set both to serve many workspaces, or neither"
            )
        if self.slack_client_id is None:
            return self
        if self.slack_bot_token is not None:
            raise ValueError(
                "set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (many workspaces, "
                "each installed through /slack/install), not both"
            )
        if self.slack_app_token is not None or self.slack_signing_secret is None:
            raise ValueError(
                "many workspaces (SLACK_CLIENT_ID) are served over HTTP: set SLACK_SIGNING_SECRET and leave "
                "SLACK_APP_TOKEN unset"
            )
        return self

    @field_validator("discord_shards", mode="before")
    @classmethod
    def _shards(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip().lower()
            if v != "auto" and not v.isdigit():
                raise ValueError('must be a whole number of shards (1 or more) or "auto"')
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        if isinstance(v, int) and v < 1:
            raise ValueError('must be a whole number of shards (1 or more) or "auto"')
        return v

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids(cls, v: str, info: ValidationInfo) -> str:
        words = [w.strip() for w in v.split(",") if w.strip()]
        if not words:
            return ""
        count = info.data.get("discord_shards")
        if not isinstance(count, int):
            raise ValueError("needs STUDYBOT_DISCORD_SHARDS set to the total number of shards (a number, not auto)")
        if not all(w.isdigit() for w in words):
            raise ValueError("must be shard numbers separated by commas, e.g. 0,1")
        ids = [int(w) for w in words]
        wrong = [i for i in ids if i >= count]
        if wrong:
            raise ValueError(
                f"shard {wrong[0]} does not exist with STUDYBOT_DISCORD_SHARDS={count} (ids run 0 to {count - 1})"
            )
        if len(set(ids)) != len(ids):
            raise ValueError("lists a shard twice")
        return ",".join(str(i) for i in sorted(ids))

    @property
    def discord_shard_id_list(self) -> list[int] | None:
        """The shards this process runs; None: all of them (or no sharding)."""
        return [int(w) for w in self.discord_shard_ids.split(",")] if self.discord_shard_ids else None

    @field_validator("owners")
    @classmethod
    def _owners(cls, v: str) -> str:
        for entry in _entries(v):
            platform, _, user = entry.rpartition(":")
            if platform not in ("", *OWNER_PLATFORMS) or not _USER_ID.fullmatch(user):
                raise ValueError(
                    "must be comma-separated user ids, each as discord:<id> or slack:<id> "
                    "(e.g. discord:123456789012345678,slack:U0123ABCD)"
                )
        return v

    def owners_on(self, platform: str) -> frozenset[str]:
        """The user ids ``STUDYBOT_OWNERS`` names on ``platform``: those given as ``platform:<id>``,
        and plain ids (which count on every platform)."""
        found = set()
        for entry in _entries(self.owners):
            prefix, _, user = entry.rpartition(":")
            if prefix in ("", platform):
                found.add(user)
        return frozenset(found)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        from bot.storage.urls import UrlError, check_url  # loaded only when the setting is used

        try:
            check_url(v.get_secret_value().strip())
        except UrlError as e:
            raise ValueError(str(e)) from None
        return SecretStr(v.get_secret_value().strip())

    def database(self, db: Path | None = None) -> str:
        """The database URL in force: ``db`` (a SQLite file named on the command line), else
        ``STUDYBOT_DATABASE_URL``, else the SQLite file ``STUDYBOT_DB``."""
        if db is not None:
            return f"sqlite:///{db}"
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.db}"

    @property
    def slack_admin_ids(self) -> frozenset[str]:
        return frozenset(x.strip() for x in self.slack_admins.split(",") if x.strip())

    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None

    @property
    def slack_oauth(self) -> bool:
        """Many workspaces: installed per workspace through OAuth, tokens kept in the database."""
        return self.slack_client_id is not None and self.slack_client_secret is not None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_oauth or (
            self.slack_bot_token is not None
            and (self.slack_signing_secret is not None or self.slack_app_token is not None)
        )

    def secrets(self) -> list[str]:
        """The secret values in force, for log redaction."""
        found = [
            self.discord_token,
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.slack_client_secret,
        ]
        values = [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                values.append(password)
        return values


class SettingsError(Exception):
    """A setting has a bad value; the message is one line naming the variable and what is allowed."""


def _alias(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()


#: Settings whose values are never shown, even when they are wrong: tokens, secrets, and URLs (which
#: may carry credentials such as ``https://user:password@host/``).
SECRET_SETTINGS = frozenset(
    {
        "DISCORD_TOKEN",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "SLACK_CLIENT_SECRET",
        "SLACK_REDIRECT_URI",
        "STUDYBOT_DATABASE_URL",
    }
)
#: A wrong value is shown only when it is this short: every valid value of the other settings (a
#: level, a port, an id, a number of hours) is shorter, and every token or secret is longer.
MAX_SHOWN_VALUE = 24
_SECRET_LOOKING = re.compile(r"^(xox[a-z]-|xapp-)|://[^/\s]*@|(?i:token|secret|passw)")


def shown_value(name: str, value: object) -> str:
    """How a bad value of setting ``name`` appears in an error: quoted when harmless, else only its
    length. A secret pasted into the wrong variable must not end up in a terminal or a log."""
    text = str(value)
    if name in SECRET_SETTINGS or len(text) > MAX_SHOWN_VALUE or _SECRET_LOOKING.search(text):
        return f"a value of {len(text)} characters, not shown"
    return f"got {text!r}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`; raises `SettingsError` (one line) on bad values.
    The message never holds the value of a secret setting, nor a long or secret-looking value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a rule across settings: its message names them, and no value is shown
            raise SettingsError(str(err["msg"]).removeprefix("Value error, ")) from None
        field = str(err["loc"][0])
        name = field if field.isupper() else _alias(field)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be")
        raise SettingsError(f"{name}: {msg} ({shown_value(name, err.get('input'))})") from None
