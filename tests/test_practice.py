"""Open-card practice (issue 16): the shipped interview prompts dealt, written, shown and self-rated on
FSRS, on both stores; the bad input the issue lists; written answers kept private; `/study review`
mixing questions and open cards."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

import pytest

from bot.core import actions
from bot.core.commands import MAX_ANSWER_CHARS, parse
from bot.core.content import ContentLibrary
from bot.core.learning import LearningEngine, make_scheduler, review
from bot.core.markup import plain
from bot.core.messages import Inbound, Reply
from bot.core.practice import PackCards, PracticeEngine
from bot.core.service import StudyService
from bot.storage import ManagedStore, learning_for, practice_for
from bot.storage.practice_store import PgPracticeStore, SqlitePracticeStore
from tests.conftest import ROOT, FakeClock, Outside, inbound

SHIPPED = ROOT / "content"


@pytest.fixture
def shipped() -> ContentLibrary:
    return ContentLibrary.load(SHIPPED)


@pytest.fixture
def svc(store: ManagedStore, shipped: ContentLibrary, clock: FakeClock) -> StudyService:
    return practice_service(store, shipped, clock)


def practice_service(store: ManagedStore, library: ContentLibrary, clock: FakeClock) -> StudyService:
    """A service wired as `build_app` wires it: learning engine, then open-card practice."""
    service = StudyService(store, library, clock, rng=random.Random(7))
    learning = LearningEngine(learning_for(store), store, library, clock, charts=False)
    learning.install(service)
    PracticeEngine(practice_for(store), PackCards(library), learning).install(service)
    return service


def step(reply: Reply, name: str) -> str:
    """The action id of the button ``name`` (show, write, r1…r4) on ``reply``."""
    for b in reply.buttons:
        parsed = actions.parse_action(b.action_id)
        if isinstance(parsed, actions.PracticeAction) and parsed.step == name:
            return b.action_id
    raise AssertionError(f"no {name} button on {reply.text!r}: {reply.buttons}")


def prompt_id(library: ContentLibrary, text: str) -> str:
    found = [p.id for p in library.pack.interview if p.prompt in text]
    assert len(found) == 1, text
    return found[0]


async def rows(outside: Outside, query: str, user: str = "alice") -> list[tuple[object, ...]]:
    return await outside(query.replace("{member}", "(SELECT id FROM members WHERE user_id = ?)"), user)


# ---------------------------------------------------------------------- the flow


async def test_interview_deals_writes_shows_points_and_rates_in_one_transaction(
    svc: StudyService, shipped: ContentLibrary, outside: Outside, clock: FakeClock
) -> None:
    [dealt] = await svc.handle(inbound("interview"))
    assert dealt.private
    pid = prompt_id(shipped, dealt.text)
    assert [b.label for b in dealt.buttons] == ["Write an answer", "Show points"]

    [kept] = await svc.handle(inbound("write I would start with the stakeholders\nand agree the outcomes first."))
    assert "Answer kept" in kept.text and kept.private

    [shown] = await svc.handle(inbound(action=step(dealt, "show")))
    prompt = next(p for p in shipped.pack.interview if p.id == pid)
    text = plain(shown.text)
    assert all(point in text for point in prompt.covers)
    assert "I would start with the stakeholders\nand agree the outcomes first." in text
    assert [b.label for b in shown.buttons] == ["Again", "Hard", "Good", "Easy"]

    [rated] = await svc.handle(inbound(action=step(shown, "r3")))
    assert "Rated Good" in plain(rated.text)
    attempt = await rows(outside, "SELECT card_key, rating, answer FROM attempts WHERE member_id = {member}")
    assert attempt == [(pid, 3, "I would start with the stakeholders\nand agree the outcomes first.")]
    [(kind, key, due)] = await rows(
        outside, "SELECT kind, card_key, due FROM practice_cards WHERE member_id = {member}"
    )
    assert (kind, key) == ("interview", pid)
    assert datetime.fromisoformat(str(due)) > clock.now() + timedelta(days=1)  # Good on a new card: days away


async def test_every_shipped_interview_prompt_can_be_practised(svc: StudyService, shipped: ContentLibrary) -> None:
    seen = set()
    for _ in shipped.pack.interview:
        [dealt] = await svc.handle(inbound("interview"))
        seen.add(prompt_id(shipped, dealt.text))
        [shown] = await svc.handle(inbound("points"))
        assert "Points a strong answer covers" in shown.text
        [rated] = await svc.handle(inbound("rate easy"))
        assert "Rated Easy" in plain(rated.text)
    assert seen == {p.id for p in shipped.pack.interview}  # unseen ones first: each once


async def test_due_prompts_come_before_unseen_ones(
    svc: StudyService, shipped: ContentLibrary, clock: FakeClock
) -> None:
    [first] = await svc.handle(inbound("interview"))
    await svc.handle(inbound("rate again"))
    clock.advance(days=2)
    [again] = await svc.handle(inbound("interview"))
    assert prompt_id(shipped, again.text) == prompt_id(shipped, first.text)


async def test_rating_twice_records_the_first_only(svc: StudyService, outside: Outside) -> None:
    [dealt] = await svc.handle(inbound("interview"))
    [shown] = await svc.handle(inbound(action=step(dealt, "show")))
    await svc.handle(inbound(action=step(shown, "r4")))
    [card_before] = await rows(outside, "SELECT card, due FROM practice_cards WHERE member_id = {member}")
    [twice] = await svc.handle(inbound(action=step(shown, "r1")))
    assert twice.private and "already rated this card Easy" in twice.text
    assert await rows(outside, "SELECT rating FROM attempts WHERE member_id = {member}") == [(4,)]
    assert await rows(outside, "SELECT card, due FROM practice_cards WHERE member_id = {member}") == [card_before]


async def test_a_rating_click_on_someone_elses_card_changes_nothing(svc: StudyService, outside: Outside) -> None:
    [dealt] = await svc.handle(inbound("interview", user="alice"))
    [shown] = await svc.handle(inbound(action=step(dealt, "show"), user="alice"))
    [refused] = await svc.handle(inbound(action=step(shown, "r3"), user="bob"))
    assert refused.private and "dealt to someone else" in refused.text
    [peek] = await svc.handle(inbound(action=step(dealt, "show"), user="bob"))
    assert "dealt to someone else" in peek.text
    assert await rows(outside, "SELECT rating FROM attempts WHERE member_id = {member}") == [(None,)]
    assert await outside("SELECT COUNT(*) FROM practice_cards") == [(0,)]


async def test_a_click_after_the_card_was_retired_records_nothing(
    store: ManagedStore, shipped: ContentLibrary, clock: FakeClock, outside: Outside
) -> None:
    svc = practice_service(store, shipped, clock)
    [dealt] = await svc.handle(inbound("interview"))
    pid = prompt_id(shipped, dealt.text)
    # The operator reloads a pack without that prompt.
    shipped.pack = dataclasses.replace(shipped.pack, interview=tuple(p for p in shipped.pack.interview if p.id != pid))
    for action in (
        step(dealt, "show"),
        step(dealt, "write"),
        actions.practice_action(int(step(dealt, "show").split(":")[2]), "r3"),
    ):
        [out] = await svc.handle(inbound(action=action))
        assert out.private and "retired" in out.text
    [typed] = await svc.handle(inbound("write my answer"))
    assert "retired" in typed.text
    assert await rows(outside, "SELECT rating, answer FROM attempts WHERE member_id = {member}") == [(None, None)]
    assert await outside("SELECT COUNT(*) FROM practice_cards") == [(0,)]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("write", "Your answer is empty"),
        ("write    \n  ", "Your answer is empty"),
        ("write " + "x" * 4000, "too long (4,000 characters; the limit is 2,000)"),
        ("write " + "y" * 50_000, "too long (50,000 characters; the limit is 2,000)"),
    ],
)
async def test_an_empty_or_too_long_answer_is_refused_and_nothing_is_written(
    svc: StudyService, outside: Outside, text: str, says: str
) -> None:
    await svc.handle(inbound("interview"))
    [out] = await svc.handle(inbound(text))
    assert out.private and says in out.text and "\n" not in out.text
    assert await rows(outside, "SELECT answer FROM attempts WHERE member_id = {member}") == [(None,)]


async def test_an_answer_of_exactly_the_limit_is_kept(svc: StudyService, outside: Outside) -> None:
    await svc.handle(inbound("interview"))
    [out] = await svc.handle(inbound("write " + "z" * MAX_ANSWER_CHARS))
    assert "Answer kept (2,000 characters" in out.text
    assert await rows(outside, "SELECT LENGTH(answer) FROM attempts WHERE member_id = {member}") == [(2000,)]


def submission(form_action: str, answer: str, user: str = "alice") -> Inbound:
    return Inbound("console", "g1", "c1", user, user, action=form_action, values={"answer": answer})


async def test_write_an_answer_opens_a_form_whose_bad_input_is_refused_in_the_form(
    svc: StudyService, outside: Outside
) -> None:
    [dealt] = await svc.handle(inbound("interview"))
    [opened] = await svc.handle(inbound(action=step(dealt, "write")))
    form = opened.form
    assert form is not None and form.title == "Your answer" and opened.private
    (field,) = form.fields
    assert (field.max_len, field.style, field.required, field.default) == (2000, "paragraph", True, "")
    for bad, says in (("", "This field is required."), ("x" * 4000, "At most 2000 characters (this has 4000).")):
        [again] = await svc.handle(submission(form.action, bad))
        assert again.form is not None and again.form.errors == {"answer": says}
    [other] = await svc.handle(submission(form.action, "bob's words", user="bob"))
    assert "someone else" in other.text and other.form is None
    assert await rows(outside, "SELECT answer FROM attempts WHERE member_id = {member}") == [(None,)]
    [kept] = await svc.handle(submission(form.action, "  Agree the goals first.\r\nThen the plan.  "))
    assert "Answer kept" in kept.text
    assert await rows(outside, "SELECT answer FROM attempts WHERE member_id = {member}") == [
        ("Agree the goals first.\nThen the plan.",)
    ]
    [reopened] = await svc.handle(inbound(action=step(dealt, "write")))
    assert reopened.form is not None and reopened.form.fields[0].default == "Agree the goals first.\nThen the plan."
    await svc.handle(inbound("rate good"))
    [late] = await svc.handle(submission(form.action, "changed my mind"))
    assert "rated that card already" in late.text
    assert await rows(outside, "SELECT answer FROM attempts WHERE member_id = {member}") == [
        ("Agree the goals first.\nThen the plan.",)
    ]


async def test_writing_after_rating_is_refused(svc: StudyService, outside: Outside) -> None:
    await svc.handle(inbound("interview"))
    await svc.handle(inbound("write first thoughts"))
    await svc.handle(inbound("rate hard"))
    [out] = await svc.handle(inbound("write second thoughts"))
    assert "rated that card already" in out.text
    assert await rows(outside, "SELECT answer FROM attempts WHERE member_id = {member}") == [("first thoughts",)]


async def test_text_steps_without_a_card_say_how_to_get_one(svc: StudyService) -> None:
    for text in ("points", "rate good", "write hello"):
        [out] = await svc.handle(inbound(text))
        assert "/study interview" in out.text


def test_the_grammar_of_the_practice_commands() -> None:
    assert parse("write two\nlines").args == {"text": "two\nlines"}
    assert parse("/study write " + "a" * 900).args["text"] == "a" * 900  # past the 500-character command limit
    assert parse("rate GOOD").args == {"rating": "good"}
    assert parse("cards tpm").args == {"deck": "tpm"}
    for bad in ("rate great", "rate", "cards a b"):
        with pytest.raises(ValueError, match="Usage"):
            parse(bad)


async def test_cards_serves_open_cards_of_a_deck_and_names_the_decks_for_an_unknown_one(svc: StudyService) -> None:
    [dealt] = await svc.handle(inbound("cards tpm"))
    assert "Flashcards" in dealt.text and dealt.buttons
    [unknown] = await svc.handle(inbound("cards nosuch"))
    assert 'No deck "' in plain(unknown.text) and "decks: tpm" in unknown.text


# ---------------------------------------------------------------------- private answers, progress, review


async def test_written_answers_are_counted_for_their_member_and_shown_to_nobody_else(
    svc: StudyService, store: ManagedStore, shipped: ContentLibrary, clock: FakeClock
) -> None:
    secret = "My secret salary expectations are high"
    await svc.handle(inbound("interview"))
    await svc.handle(inbound(f"write {secret}"))
    await svc.handle(inbound("rate good"))
    [mine] = await svc.handle(inbound("progress"))
    assert "Interview practice: 1 rated (1 written)" in plain(mine.text)
    assert secret not in mine.text
    [theirs] = await svc.handle(inbound("progress alice", user="bob"))
    assert "Interview practice: 1 rated" in plain(theirs.text) and secret not in theirs.text
    learning = LearningEngine(learning_for(store), store, shipped, clock, charts=False)
    files = await learning.export_files(None, clock.now())
    assert files and all(secret not in text for text in files.values())


async def test_forget_me_deletes_attempts_and_practice_cards(svc: StudyService, outside: Outside) -> None:
    await svc.handle(inbound("interview"))
    await svc.handle(inbound("write something private"))
    await svc.handle(inbound("rate good"))
    [done] = await svc.handle(inbound("forget-me confirm"))
    assert "gone" in done.text
    assert await outside("SELECT COUNT(*) FROM attempts") == [(0,)]
    assert await outside("SELECT COUNT(*) FROM practice_cards") == [(0,)]


async def test_review_serves_both_kinds_most_overdue_first(
    svc: StudyService, shipped: ContentLibrary, clock: FakeClock
) -> None:
    # A question answered wrongly (due in a day), then an interview prompt rated Again a day later.
    [q] = await svc.handle(inbound("quiz"))
    post = actions.parse_action(q.buttons[0].action_id)
    assert isinstance(post, actions.AnswerAction)
    qid = (await svc.store.get_post(post.post_id)).item_id  # type: ignore[union-attr]
    wrong = next(letter for letter in "ABCD" if letter != shipped.pack.question(qid).answer)  # type: ignore[union-attr]
    await svc.handle(inbound(action=actions.answer_action(post.post_id, wrong)))
    clock.advance(days=1)
    [dealt] = await svc.handle(inbound("interview"))
    await svc.handle(inbound("rate again"))
    clock.advance(days=3)
    [progress] = await svc.handle(inbound("progress"))
    assert "Interview practice: 1 rated · 1 due" in plain(progress.text)
    assert "Reviews due: 1" in plain(progress.text)
    [first] = await svc.handle(inbound("review"))
    assert "Review" in first.text and shipped.pack.question(qid).prompt in first.text  # type: ignore[union-attr]
    await svc.handle(inbound(action=actions.answer_action(post.post_id + 1, "A")))  # answer the review
    [second] = await svc.handle(inbound("review"))
    assert "Review · Interview practice" in second.text
    assert prompt_id(shipped, second.text) == prompt_id(shipped, dealt.text)


async def test_the_chart_has_a_row_for_interview_practice(
    store: ManagedStore, shipped: ContentLibrary, clock: FakeClock
) -> None:
    service = StudyService(store, shipped, clock, rng=random.Random(7))
    learning = LearningEngine(learning_for(store), store, shipped, clock, charts=False)
    learning.install(service)
    PracticeEngine(practice_for(store), PackCards(shipped), learning).install(service)
    for rating in ("good", "again", "easy"):
        await service.handle(inbound("interview"))
        await service.handle(inbound(f"rate {rating}"))
    member = await store.ensure_member("console", "g1", "c1", "alice", "alice", now=clock.now())
    data = await learning.chart_data(clock.now(), member)
    assert ("interview practice", 2 / 3, 3) in data.topics


# ---------------------------------------------------------------------- the store contract


async def test_the_practice_store_contract(store: ManagedStore, clock: FakeClock, outside: Outside) -> None:
    practice = practice_for(store)
    assert isinstance(practice, SqlitePracticeStore | PgPracticeStore)
    alice = await store.ensure_member("console", "g", "c", "alice", "Alice", now=clock.now())
    bob = await store.ensure_member("console", "g", "c", "bob", "Bob", now=clock.now())
    a1 = await practice.deal_attempt(alice.member_id, alice.group_id, "interview", "iv-01", clock.now())
    a2 = await practice.deal_attempt(alice.member_id, alice.group_id, "card", "d.7", clock.now())
    assert a2 > a1
    got = await practice.get_attempt(a1)
    assert got is not None and (got.card_key, got.kind, got.answer, got.rating) == ("iv-01", "interview", None, None)
    assert (await practice.latest_attempt(alice.member_id)).id == a2  # type: ignore[union-attr]
    assert await practice.latest_attempt(bob.member_id) is None
    assert await practice.get_attempt(a2 + 100) is None

    assert await practice.write_answer(a1, alice.member_id, "mine")
    assert not await practice.write_answer(a1, bob.member_id, "not mine")
    scheduler = make_scheduler()

    def card_fn(rating: int):  # type: ignore[no-untyped-def]
        def fn(stored: str | None) -> tuple[str, datetime]:
            from fsrs import Rating

            return review(
                scheduler, stored, member_id=alice.member_id, question_id="k", rating=Rating(rating), at=clock.now()
            )

        return fn

    assert not (await practice.rate_attempt(a1, bob.member_id, 3, clock.now(), card_fn(3))).recorded
    done = await practice.rate_attempt(a1, alice.member_id, 1, clock.now(), card_fn(1))
    assert done.recorded and done.rating == 1 and done.due is not None
    again = await practice.rate_attempt(a1, alice.member_id, 4, clock.now(), card_fn(4))
    assert (again.recorded, again.rating) == (False, 1)
    assert not await practice.write_answer(a1, alice.member_id, "after rating")
    await practice.rate_attempt(a2, alice.member_id, 4, clock.now(), card_fn(4))

    later = clock.now() + timedelta(days=2)
    assert [(k, c) for k, c, _ in await practice.due_practice(alice.member_id, later, 10)] == [("interview", "iv-01")]
    assert await practice.practice_counts(alice.member_id) == {"iv-01": 1, "d.7": 1}
    summary = {s.kind: s for s in await practice.practice_summary(alice.member_id, later)}
    assert (summary["interview"].rated, summary["interview"].written, summary["interview"].good) == (1, 1, 0)
    assert summary["interview"].due == 1 and summary["card"].due == 0 and summary["card"].next_due is not None

    def broken(stored: str | None) -> tuple[str, datetime]:
        raise ValueError("broken card")

    a3 = await practice.deal_attempt(alice.member_id, alice.group_id, "interview", "iv-02", clock.now())
    kept = await practice.rate_attempt(a3, alice.member_id, 3, clock.now(), broken)
    assert kept.recorded and kept.due is None  # the rating stands; the card is left as it was
    removed = await store.forget_member(alice.member_id)
    assert removed >= 3 + 2 + 1  # three attempts, two cards, the member
    assert await outside("SELECT COUNT(*) FROM attempts") == [(0,)]
