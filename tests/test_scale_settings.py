"""Settings for several bot processes: how fast each one posts scheduled messages."""

from __future__ import annotations

import pytest

from bot.config import SettingsError, load_settings
from bot.core.service import StudyService


def test_each_process_paces_its_posts_at_its_share(service: StudyService, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.adapters.discord_adapter import DiscordFrontEnd

    monkeypatch.setenv("DISCORD_TOKEN", "fake-token-for-settings")
    assert DiscordFrontEnd.from_settings(service, load_settings()).pacer.interval == pytest.approx(1 / 48)
    monkeypatch.setenv("STUDYBOT_DISCORD_POSTS_PER_SECOND", "16")  # one of three processes
    assert DiscordFrontEnd.from_settings(service, load_settings()).pacer.interval == pytest.approx(1 / 16)


@pytest.mark.parametrize("bad", ["0", "51", "fast"])
def test_a_rate_discord_would_refuse_is_refused_in_one_line(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDYBOT_DISCORD_POSTS_PER_SECOND", bad)
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert str(e.value).startswith("STUDYBOT_DISCORD_POSTS_PER_SECOND:") and "\n" not in str(e.value)
