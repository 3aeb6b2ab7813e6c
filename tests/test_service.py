"""The core service end to end on a real SQLite file with a fake clock and the fixture pack."""

from __future__ import annotations

import logging
import re

import pytest

from bot.core import actions
from bot.core.commands import SPECS
from bot.core.markup import plain
from bot.core.service import StudyService
from tests.conftest import FakeClock, Outside, inbound


def post_id_of(reply_buttons: tuple) -> int:  # type: ignore[type-arg]
    parsed = actions.parse_action(reply_buttons[0].action_id)
    assert isinstance(parsed, actions.AnswerAction)
    return parsed.post_id


def correct_letter(text: str) -> str:
    # The fixture's questions say which letter is right in the prompt.
    m = re.search(r"test question ([ABCD])", text)
    assert m, text
    return m.group(1)


async def test_quiz_answer_progress_flow(service: StudyService) -> None:
    [q] = await service.handle(inbound("/study quiz"))
    assert q.private and [b.label for b in q.buttons] == ["A", "B", "C", "D"]
    assert all(f"**{x})**" in q.text for x in "ABCD")
    letter = correct_letter(q.text)
    [r] = await service.handle(inbound(action=q.buttons[ord(letter) - 65].action_id))
    assert r.private and r.text.startswith("✅ Correct") and "Streak: 1 day" in r.text
    [again] = await service.handle(inbound(action=q.buttons[0].action_id))
    assert "already answered" in again.text
    [p] = await service.handle(inbound("progress"))
    assert "Answered 1 · correct 1 (100%) · points 1" in p.text


async def test_wrong_answer_explains(service: StudyService) -> None:
    [q] = await service.handle(inbound("quiz"))
    right = correct_letter(q.text)
    wrong = "A" if right != "A" else "B"
    [r] = await service.handle(inbound(f"answer {wrong}"))
    assert r.text.startswith(f"❌ Not quite — you picked {wrong}; the answer is **{right})**")
    assert "in this test question" in r.text  # the explanation


async def test_no_repeats_until_the_pool_is_used(service: StudyService) -> None:
    seen = []
    for _ in range(4):
        [q] = await service.handle(inbound("quiz"))
        seen.append(correct_letter(q.text))
        await service.handle(inbound("answer A"))
    assert sorted(seen) == ["A", "B", "C", "D"]
    [q5] = await service.handle(inbound("quiz"))
    assert correct_letter(q5.text) in "ABCD"


async def test_someone_elses_question_cannot_be_answered(service: StudyService) -> None:
    [q] = await service.handle(inbound("quiz", user="alice"))
    [r] = await service.handle(inbound(action=q.buttons[0].action_id, user="bob"))
    assert "dealt to someone else" in r.text


async def test_forged_or_foreign_post_ids_are_refused(service: StudyService) -> None:
    [q] = await service.handle(inbound("quiz", user="alice", group="g1"))
    pid = post_id_of(q.buttons)
    [r] = await service.handle(inbound(action=actions.answer_action(pid, "A"), user="alice", group="other"))
    assert "isn't available here" in r.text
    [r2] = await service.handle(inbound(action="sb:ans:999999:A"))
    assert "isn't available here" in r2.text
    [r3] = await service.handle(inbound(action="garbage"))
    assert "no longer valid" in r3.text


async def test_unicode_digits_and_huge_post_ids_in_buttons_are_invalid_buttons_not_errors(
    service: StudyService, caplog: pytest.LogCaptureFixture
) -> None:
    for action in ("sb:ans:²:A", "sb:ans:①:B", "sb:ans:٣:A", f"sb:ans:{2**64}:A", "sb:ans:" + "9" * 40 + ":C"):
        [r] = await service.handle(inbound(action=action))
        assert r.private and "no longer valid" in r.text, action
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]


async def test_a_member_hidden_from_leaderboards_is_not_shown_to_others_by_progress(service: StudyService) -> None:
    await service.handle(inbound("quiz", user="bob", name="Bobby"))
    await service.handle(inbound("answer A", user="bob", name="Bobby"))
    await service.handle(inbound("leaderboard hide", user="bob", name="Bobby"))
    [other] = await service.handle(inbound("progress bobby", user="alice"))
    assert 'No member "bobby" here yet' in plain(other.text) and "Answered" not in other.text
    [own] = await service.handle(inbound("progress bobby", user="bob", name="Bobby"))
    assert "Answered 1" in own.text
    [admin] = await service.handle(inbound("progress bobby", user="carol", admin=True))
    assert "Answered 1" in admin.text
    await service.handle(inbound("leaderboard show", user="bob", name="Bobby"))
    [again] = await service.handle(inbound("progress bobby", user="alice"))
    assert "Answered 1" in again.text


async def test_answer_without_a_question(service: StudyService) -> None:
    [r] = await service.handle(inbound("answer A"))
    assert "no question to answer here yet" in r.text


async def test_leaderboard_is_public_and_ordered(service: StudyService, clock: FakeClock) -> None:
    for user, right in (("bob", True), ("alice", True), ("alice", True), ("cy", False)):
        [q] = await service.handle(inbound("quiz", user=user))
        letter = correct_letter(q.text) if right else ("A" if correct_letter(q.text) != "A" else "B")
        await service.handle(inbound(f"answer {letter}", user=user))
        clock.advance(minutes=1)
    [board] = await service.handle(inbound("leaderboard"))
    assert not board.private
    lines = board.text.splitlines()
    assert "alice" in lines[1] and "2 pts" in lines[1]
    assert "bob" in lines[2] and "1 pt" in lines[2]
    assert "cy" not in board.text
    await service.handle(inbound("leaderboard hide", user="alice"))
    [board2] = await service.handle(inbound("leaderboard all"))
    assert "alice" not in board2.text and "bob" in board2.text


async def test_timezone_suggests_and_sets(service: StudyService) -> None:
    [bad] = await service.handle(inbound("timezone Europe/Berln"))
    assert bad.text == 'Unknown time zone "Europe/Berln" — did you mean Europe/Berlin?'
    [mars] = await service.handle(inbound("timezone Mars/Olympus"))
    assert mars.text.startswith('Unknown time zone "Mars/Olympus"')
    [ok] = await service.handle(inbound("timezone asia/kolkata"))
    assert ok.text.startswith("Your time zone is now Asia/Kolkata (it is 17:30 there)")
    [show] = await service.handle(inbound("timezone"))
    assert show.text == "Your time zone: Asia/Kolkata"


async def test_path_and_tip_follow_the_current_step(service: StudyService) -> None:
    [tip] = await service.handle(inbound("tip"))
    assert "step 1: Credentials" in tip.text and "This week:" in tip.text
    [done] = await service.handle(inbound("path done 1"))
    assert "marked done (1 of 6)" in done.text and "Next up: step 2" in done.text
    [dup] = await service.handle(inbound("path done 1"))
    assert "already marked done" in dup.text
    [tip2] = await service.handle(inbound("tip"))
    assert "step 2: Skills" in tip2.text
    [path] = await service.handle(inbound("path"))
    assert "✅ 1." in path.text and "▶️ 2." in path.text and "1 of 6 done" in path.text


async def test_progress_of_another_member(service: StudyService) -> None:
    await service.handle(inbound("quiz", user="bob", name="Bobby"))
    await service.handle(inbound("answer A", user="bob", name="Bobby"))
    [p] = await service.handle(inbound("progress bobby"))
    assert plain(p.text).startswith("**Progress — Bobby**") and "Answered 1" in p.text
    [missing] = await service.handle(inbound("progress nobody"))
    assert 'No member "nobody" here yet' in plain(missing.text)


async def test_forget_me_asks_then_deletes(service: StudyService, outside: Outside) -> None:
    await service.handle(inbound("quiz"))
    await service.handle(inbound("answer A"))
    [ask] = await service.handle(inbound("forget-me"))
    assert "cannot be undone" in ask.text and [b.label for b in ask.buttons] == ["Delete my data", "Cancel"]
    assert await outside("SELECT COUNT(*) FROM answers") == [(1,)]
    [cancel] = await service.handle(inbound(action=ask.buttons[1].action_id))
    assert cancel.text == "Nothing was deleted."
    [gone] = await service.handle(inbound(action=ask.buttons[0].action_id))
    assert gone.text.startswith("Done — everything studybot stored about you")
    assert await outside("SELECT COUNT(*) FROM answers") == [(0,)]
    assert await outside("SELECT COUNT(*) FROM members WHERE user_id = 'alice'") == [(0,)]


async def test_admin_commands_are_refused_to_members(service: StudyService) -> None:
    for text in ("schedule show", "schedule set 09:00", "export"):
        [r] = await service.handle(inbound(text, admin=False))
        assert r.private and r.text.startswith("Only admins can use /study"), text
    [r] = await service.handle(inbound("content load", admin=False))
    assert r.private and r.text.startswith("Only the bot's operator can use /study content load")


async def test_bad_input_never_raises(service: StudyService) -> None:
    for text in (
        "",
        "/study",
        "answer Z",
        "quiz extra words",
        "ü" * 10_000,
        "\x00\x01",
        "timezone ../../etc",
    ):
        replies = await service.handle(inbound(text))
        assert len(replies) == 1 and replies[0].private and "\n" not in replies[0].text


async def test_unexpected_errors_are_logged_and_apologised_for(service: StudyService, caplog) -> None:  # type: ignore[no-untyped-def]
    async def boom(*_: object) -> None:
        raise RuntimeError("kaboom")

    service.store.steps_done = boom  # type: ignore[method-assign]
    [r] = await service.handle(inbound("path"))
    assert r.text.startswith("Something went wrong on our side; it has been logged")
    assert "kaboom" in caplog.text


async def test_a_revealed_question_no_longer_takes_answers(service: StudyService, store, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    from bot.storage import schedules_for

    m = await store.ensure_member("console", "g1", "c1", "bob", "bob", now=clock.now())
    post = await store.create_post(m.group_id, m.channel_id, None, "question", "t-b", clock.now())
    await store.set_post_message(post.id, "m1")  # it went out
    [early] = await service.handle(inbound(action=actions.answer_action(post.id, "B"), user="bob"))
    assert early.text.startswith("✅ Correct")
    assert await store.get_post(post.id) is not None  # now cached
    assert await schedules_for(store).claim_reveal(post.id, clock.advance(hours=24))
    [late] = await service.handle(inbound(action=actions.answer_action(post.id, "B"), user="alice"))
    assert "already been revealed" in late.text
    [typed] = await service.handle(inbound("answer B", user="alice"))
    assert "already been revealed" in typed.text
    assert await store.choice_counts(post.id) == {"B": 1}, "the late answers changed nothing"


async def test_help_shows_each_person_only_what_they_can_use(service: StudyService) -> None:
    [member] = await service.handle(inbound("help"))
    assert "/study quiz" in member.text and "/study remind" in member.text
    assert "schedule" not in member.text and "content" not in member.text and "export" not in member.text
    assert "Admins" not in member.text and "Operator" not in member.text
    [refused] = await service.handle(inbound("help admin"))
    assert refused.text.startswith("Those commands are for this group's admins") and "schedule" not in refused.text
    [refused] = await service.handle(inbound("help schedule"))
    assert refused.text.startswith('No command "schedule" that you can use'), refused.text
    [admin] = await service.handle(inbound("help", admin=True))
    assert "/study quiz" in admin.text and "`/study help admin` lists the" in admin.text
    assert "/study schedule set" not in admin.text, "the first page stays the member's list"
    [admin_page] = await service.handle(inbound("help admin", admin=True))
    assert "`/study schedule show|preview|set|" in admin_page.text and "`/study export`" in admin_page.text
    assert "`/study help schedule`" in admin_page.text, "a family folds into one line that says where its forms are"
    assert "/study quiz" not in admin_page.text
    assert "/study content" not in admin_page.text, "the shipped pack is the operator's, not a server admin's"
    [refused] = await service.handle(inbound("help operator", admin=True))
    assert refused.text.startswith("Those commands are for the bot's operator")
    [operator] = await service.handle(inbound("help operator", operator=True))
    assert "`/study content list|validate|load`" in operator.text and "schedule" not in operator.text
    [content] = await service.handle(inbound("help content", operator=True))
    assert "`/study content load` — " in content.text


async def test_help_for_one_command_lists_its_forms(service: StudyService) -> None:
    [schedule] = await service.handle(inbound("help schedule", admin=True))
    lines = schedule.text.splitlines()
    assert all(line.startswith("`/study schedule ") for line in lines), lines
    assert any(line.startswith("`/study schedule set <HH:MM>") for line in lines)
    [remind] = await service.handle(inbound("help /remind"))
    assert remind.text.startswith("`/study remind")
    [unknown] = await service.handle(inbound("help frobnicate"))
    assert unknown.text.startswith('No command "frobnicate"')
    [too_many] = await service.handle(inbound("help schedule set"))
    assert too_many.text.startswith("Usage: /study help")


async def test_every_help_page_fits_one_discord_message(service: StudyService) -> None:
    """Discord takes 2,000 characters a message: each page of help (as the operator, who sees most, on
    Discord, where admin commands are longest) must arrive whole in one."""
    from dataclasses import replace

    topics = ["", "admin", "operator", *sorted({name.split(".")[0] for name in SPECS})]
    for topic in topics:
        [page] = await service.handle(replace(inbound(f"help {topic}".strip(), operator=True), platform="discord"))
        assert len(page.text) <= 2000, (topic, len(page.text))


async def test_help_names_admin_commands_as_typed_on_each_platform(service: StudyService) -> None:
    from dataclasses import replace

    [discord_admin] = await service.handle(replace(inbound("help admin", admin=True), platform="discord"))
    assert "`/study-admin schedule show|" in discord_admin.text and "`/study-admin export`" in discord_admin.text
    assert "`/study schedule" not in discord_admin.text
    assert "content" not in discord_admin.text, "operator commands are listed to operators only"
    [slack_admin] = await service.handle(replace(inbound("help admin", admin=True), platform="slack"))
    assert "`/study schedule show|" in slack_admin.text and "/study-admin" not in slack_admin.text
    [discord_schedule] = await service.handle(replace(inbound("help schedule", admin=True), platform="discord"))
    assert "`/study-admin schedule set <HH:MM>" in discord_schedule.text
    [discord_member] = await service.handle(replace(inbound("help"), platform="discord"))
    assert "/study-admin" not in discord_member.text and "Admins" not in discord_member.text


async def test_content_commands_are_the_operators_and_the_operator_has_admin_rights(service: StudyService) -> None:
    [refused] = await service.handle(inbound("content list", admin=True))
    assert refused.text.startswith("Only the bot's operator can use /study content list")
    [schedule] = await service.handle(inbound("schedule show", operator=True))
    assert not schedule.text.startswith("Only"), schedule.text
