"""Timers for the daily posts: APScheduler 3.11 behind our own verbs (see `scheduler.py`)."""

from bot.scheduling.scheduler import Scheduler

__all__ = ["Scheduler"]
