"""The platform-free core: domain rules and services.

Nothing in this package imports discord, slack_bolt, slack_sdk, aiosqlite or apscheduler;
`tests/test_architecture.py` enforces it.
"""
