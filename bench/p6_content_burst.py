"""P6: one group's content commands must not stall another group's clicks.

The whole core (real SQLite, the bundled content pack) in one process: a member of group B clicks an
answer button every 10 ms and the latency of each click is recorded — first alone, then while the
operator fires 80 `/study content validate|load` at once from group A (the hostile test saw another
guild's click p50 go from 4 ms to 81 ms). Run alone: ``python -m bench.p6_content_burst``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, percentile
from bot.bootstrap import build_app
from bot.config import BUNDLED_CONTENT, Settings
from bot.core import actions
from bot.core.messages import Inbound

BURST = 80
CLICK_EVERY = 0.010
BASELINE_CLICKS = 200


def _inbound(**kw: Any) -> Inbound:
    # ``is_operator`` exists from issue 12 on; without it (older code) group admins ran these commands.
    if "is_operator" not in {f.name for f in dataclasses.fields(Inbound)}:
        kw.pop("is_operator", None)
    return Inbound(**kw)


async def clicks(app: Any, post_id: int, until: asyncio.Event | None, count: int) -> list[float]:
    """Click every `CLICK_EVERY` s as bob in group B; the latency of each, until ``until`` is set (or
    ``count`` clicks)."""
    out: list[float] = []
    action = actions.answer_action(post_id, "A")
    while (until is None and len(out) < count) or (until is not None and not until.is_set()):
        t = time.perf_counter()
        await app.service.handle(
            _inbound(platform="discord", group="guild-b", channel="b1", user="bob", user_name="bob", action=action)
        )
        out.append(time.perf_counter() - t)
        await asyncio.sleep(CLICK_EVERY)
    return out


async def main_async() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(STUDYBOT_DB=Path(tmp) / "p6.db", STUDYBOT_CONTENT=BUNDLED_CONTENT)  # type: ignore[call-arg]
        app = await build_app(settings)
        try:
            [quiz] = await app.service.handle(
                _inbound(platform="discord", group="guild-b", channel="b1", user="bob", user_name="bob", text="quiz")
            )
            parsed = actions.parse_action(quiz.buttons[0].action_id)
            assert isinstance(parsed, actions.AnswerAction)
            await clicks(app, parsed.post_id, None, 20)  # warm up
            alone = await clicks(app, parsed.post_id, None, BASELINE_CLICKS)

            done = asyncio.Event()
            clicker = asyncio.create_task(clicks(app, parsed.post_id, done, 0))
            t = time.perf_counter()
            texts = ["content validate", "content load"] * (BURST // 2)
            replies = await asyncio.gather(
                *(
                    app.service.handle(
                        _inbound(
                            platform="discord",
                            group="guild-a",
                            channel="a1",
                            user=f"op{i}",
                            user_name="op",
                            text=text,
                            is_admin=True,
                            is_operator=True,
                        )
                    )
                    for i, text in enumerate(texts)
                )
            )
            burst_s = time.perf_counter() - t
            done.set()
            during = await clicker
            assert all(r[0].text.startswith("✅") for r in replies), replies[0][0].text
        finally:
            await app.close()
    p50_alone, p50_burst = percentile(alone, 50) * 1000, percentile(during, 50) * 1000
    p99_burst = percentile(during, 99) * 1000
    note = (
        f"alone p50 {p50_alone:.1f} ms / p99 {percentile(alone, 99) * 1000:.1f} ms; during the burst "
        f"p50 {p50_burst:.1f} ms / p99 {p99_burst:.1f} ms over {len(during)} clicks; "
        f"the {BURST} commands took {burst_s:.2f} s"
    )
    return [
        Figure(
            "P6",
            f"other group's click p50 while {BURST} content validate/load run",
            round(p50_burst, 1),
            "ms",
            "<= 10 ms",
            p50_burst <= 10,
            note,
        )
    ]


def main() -> None:
    for figure in asyncio.run(main_async()):
        figure.emit()


if __name__ == "__main__":
    main()
