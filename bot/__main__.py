"""`python -m bot` is the same as the `studybot` console script."""

from bot.cli import main

raise SystemExit(main())
