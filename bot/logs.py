"""Logging set-up: text or JSON lines, and redaction of secret values wherever they would appear.

Redaction happens twice: when a record is created (a record factory, so it also covers handlers that
libraries add themselves) and in our handler's filter (for records made before set-up). Uncaught
exceptions in the main thread and in other threads are logged through the same path, so a traceback
that quotes a token is redacted too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

REDACTED = "[redacted]"
#: Shorter values are not treated as secrets: replacing them would garble ordinary text.
MIN_SECRET = 6

#: The password part of a URL (`postgresql://user:PASSWORD@host/db`), redacted whether or not it is a
#: configured secret: a database URL reaches logs through driver errors and our own messages. Greedy up
#: to the last "@" of the word, so a password holding "@" is covered too.
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@'\"]*:)[^\s'\"]+(@[^\s@'\"]*)")

#: Slack tokens, known or not: with Slack installed in many workspaces the bot tokens (``xoxb-``), their
#: refresh tokens (``xoxe-``), rotating tokens (``xoxe.xoxb-``) and app tokens (``xapp-``) come from the
#: database and from Slack, not from the settings, so they are matched by their shape.
_SLACK_TOKEN = re.compile(r"\b(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]+")

_base_factory: Callable[..., logging.LogRecord] | None = None


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it replaced by [redacted]."""
    return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}\g<2>", text) if "://" in text else text


def redact_tokens(text: str) -> str:
    """``text`` with every Slack token in it replaced by [redacted]."""
    return _SLACK_TOKEN.sub(REDACTED, text) if ("xox" in text or "xapp-" in text) else text


class RedactingFilter(logging.Filter):
    """Replaces every known secret value in a record's final message, traceback and stack with [redacted].

    The URL-quoted form of each secret is redacted as well, and so are the password of any URL
    (`redact_url`) and anything shaped like a Slack token (`redact_tokens`), known or not. Never raises
    for odd records."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        values = {s for s in secrets if len(s) >= MIN_SECRET}
        values |= {quote(s, safe="") for s in values}
        self.secrets = sorted(values, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return redact_tokens(redact_url(text))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep logging's own complaint path
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = self.scrub(message), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and (when there is one) exc."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=False)


def _install_record_factory(redactor: RedactingFilter) -> None:
    global _base_factory
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
    base = _base_factory

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)


def _install_excepthooks() -> None:
    """Send uncaught exceptions through logging (and so through redaction) instead of raw stderr."""
    log = logging.getLogger("studybot")

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        log.critical("unhandled error", exc_info=(kind, value, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread else "?"
        log.critical("unhandled error in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = hook
    threading.excepthook = thread_hook


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger on stderr. Safe to call again (it replaces its own handler)."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("studybot")
    handler.addFilter(redactor)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == "studybot":
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    _install_record_factory(redactor)
    _install_excepthooks()
    # Library chatter at INFO is noise for an operator.
    for noisy in ("discord", "slack_bolt", "slack_sdk", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
