"""The progress chart: a PNG with accuracy per topic, 30 days of activity and the career-path steps.

matplotlib is imported only inside `draw_progress` (with the Agg backend, no pyplot and no global
state), so the bot starts without it. `ChartRenderer` draws in worker processes (up to `CHART_WORKERS`):
matplotlib adds ~50 MB and ~150 ms of GIL-holding work per chart, neither of which the bot's own process
should carry. ``python -m bot.core.chart`` is such a worker (see `ChartRenderer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pickle
import sys
import textwrap
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

#: A worker process is replaced after this many charts (bounds any slow leak in matplotlib).
CHARTS_PER_WORKER = 500

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 7.0, 100
#: The chart goes out as a palette PNG of this many colours (see `draw_progress`).
PALETTE_COLOURS = 256

_GOOD, _MID, _LOW, _EMPTY = "#2e7d32", "#f9a825", "#c62828", "#e0e0e0"


@dataclass(frozen=True, slots=True)
class ChartData:
    """What one member's chart shows.

    ``topics``: (topic, accuracy 0..1, answers); ``activity``: (local day, answers) oldest first;
    ``steps``: (number, title, done)."""

    title: str
    topics: list[tuple[str, float, int]]
    activity: list[tuple[date, int]]
    steps: list[tuple[int, str, bool]]


def _colour(accuracy: float) -> str:
    return _GOOD if accuracy >= 0.8 else _MID if accuracy >= 0.5 else _LOW


def draw_progress(data: ChartData) -> bytes:
    """Draw ``data`` as an 800×700 PNG and return its bytes.

    Raises ImportError if matplotlib is missing (callers log it and reply without the chart)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.ticker import MaxNLocator
    from PIL import Image

    # Names may hold emoji the bundled font lacks: they are drawn as boxes, not worth a warning each time.
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 1, height_ratios=[2.2, 1.6, 0.8], hspace=0.65, left=0.2, right=0.95)
    # The title holds a member's name: a "$" in it must not start matplotlib's math markup.
    fig.suptitle(data.title[:80].replace("$", r"\$"), fontsize=13, fontweight="bold")

    # Accuracy per topic: one horizontal bar per topic, grey when not tried yet.
    ax = fig.add_subplot(grid[0])
    names = [t[0][:28] for t in data.topics] or ["(no topics)"]
    values = [t[1] * 100 if t[2] else 0.0 for t in data.topics] or [0.0]
    colours = [_colour(t[1]) if t[2] else _EMPTY for t in data.topics] or [_EMPTY]
    ys = list(range(len(names)))
    ax.barh(ys, [100.0] * len(names), color=_EMPTY, height=0.6)
    ax.barh(ys, values, color=colours, height=0.6)
    for y, (_, acc, n) in zip(ys, data.topics, strict=False):
        ax.text(101, y, f"{round(acc * 100)}% of {n}" if n else "not tried", va="center", fontsize=8)
    ax.set_yticks(ys, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 125)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_title("Accuracy per topic (%)", fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)

    # Activity: answers per local day over the last 30 days.
    ax = fig.add_subplot(grid[1])
    counts = [n for _, n in data.activity]
    xs = list(range(len(counts)))
    ax.bar(xs, counts, color="#1565c0", width=0.8)
    ticks = [i for i in xs if i % 7 == (len(xs) - 1) % 7]
    ax.set_xticks(ticks, [f"{data.activity[i][0]:%d %b}" for i in ticks], fontsize=8)
    top = max(counts, default=0)
    ax.set_ylim(0, max(3, top + 1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    active = sum(1 for n in counts if n)
    ax.set_title(f"Answers per day, last {len(counts)} days ({active} active)", fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)

    # Career path: six boxes, done ones filled.
    ax = fig.add_subplot(grid[2])
    ax.set_xlim(0, max(1, len(data.steps)))
    ax.set_ylim(0, 1)
    ax.axis("off")
    done = sum(1 for s in data.steps if s[2])
    ax.set_title(f"Career path: {done} of {len(data.steps)} steps done", fontsize=10, loc="left")
    for i, (n, title, is_done) in enumerate(data.steps):
        box = FancyBboxPatch(
            (i + 0.05, 0.1),
            0.9,
            0.8,
            boxstyle="round,pad=0,rounding_size=0.08",
            linewidth=1.5,
            facecolor=_GOOD if is_done else "white",
            edgecolor=_GOOD,
        )
        ax.add_patch(box)
        colour = "white" if is_done else "#333333"
        ax.text(i + 0.5, 0.7, f"{'✓ ' if is_done else ''}{n}", ha="center", va="center", fontsize=10, color=colour)
        ax.text(i + 0.5, 0.36, _two_lines(title), ha="center", va="center", fontsize=6.5, color=colour)

    # A palette PNG of the drawn pixels: the chart has a few hundred colours (its fills and the shades of
    # anti-aliased edges); a 256-colour median-cut palette changes a few edge pixels by a shade or two
    # (<= 10/255) and nothing else, at ~17-20 KB instead of ~40-52 KB: every chart is uploaded to the
    # platform, and members on slow links download it.
    canvas.draw()  # type: ignore[no-untyped-call]
    pixels = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(), pixels, "raw", "RGBA", 0, 1)
    image = rgba.convert("RGB").quantize(PALETTE_COLOURS, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _two_lines(title: str, width: int = 15) -> str:
    """A step title wrapped to fit its box: at most two lines, an ellipsis when it had to be cut."""
    lines = textwrap.wrap(title, width) or [""]
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), width, placeholder="…")]
    return "\n".join(lines)


#: Charts drawn at the same time, each by a worker process of its own (never more than the machine has
#: cores): a burst of ``/study progress`` on a 2-core machine gets its last chart in about half the time
#: (bench P4f).
CHART_WORKERS = 2
#: A worker stops after this long without a chart while another is running (its ~85 MB back until the
#: next burst): one stays warm.
SPARE_IDLE_SECONDS = 60.0


class _Worker:
    """A place for one worker process: the process (None until a chart needs it) and its charts so far."""

    __slots__ = ("busy", "drawn", "proc", "used")

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.drawn = 0
        self.busy = False
        self.used = 0.0  # the event loop's time when it last finished a chart


class ChartRenderer:
    """Draws charts off the event loop: in up to ``workers`` worker processes (``in_process=False``, each
    started when a chart finds the others busy) or in a thread.

    A worker is ``python -m bot.core.chart`` spoken to over its stdin and stdout by the event loop itself
    (a length-prefixed pickle of `ChartData` in, a status byte and the PNG or the error out). So the bot's
    process runs no helper threads for it: a `ProcessPoolExecutor`'s manager and queue-feeder threads took
    the GIL in turns with the event loop while a burst was being answered. Each worker draws one chart at a
    time; a chart goes to the worker that drew last (it is warm), a second one starts only while two
    charts are wanted at once, a worker that has drawn nothing for ``spare_idle`` seconds stops while
    another is running, and charts beyond the workers wait their turn in order. `draw` raises `ChartError`
    when drawing failed in a worker (matplotlib missing, say) or the worker died (the next chart it gets
    starts a new one); call `close` at shutdown."""

    def __init__(
        self, *, in_process: bool = False, workers: int | None = None, spare_idle: float = SPARE_IDLE_SECONDS
    ) -> None:
        self.in_process = in_process
        self.spare_idle = spare_idle
        wanted = CHART_WORKERS if workers is None else workers
        self._workers = [_Worker() for _ in range(max(1, min(wanted, os.cpu_count() or 1)))]
        # Last in, first out: the worker that just drew (already warm) takes the next chart.
        self._idle: asyncio.LifoQueue[_Worker] = asyncio.LifoQueue()
        for worker in reversed(self._workers):
            self._idle.put_nowait(worker)
        self._dying: set[asyncio.subprocess.Process] = set()  # killed mid-exchange, to be waited for
        self._closed = False
        self._thread_lock = asyncio.Lock()  # in a thread: one chart at a time
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def processes(self) -> list[asyncio.subprocess.Process]:
        """The worker processes started and not yet stopped, the first place's first."""
        return [w.proc for w in self._workers if w.proc is not None]

    async def draw(self, data: ChartData) -> bytes:
        if self.in_process:
            return await self._in_thread(data)
        worker = await self._idle.get()
        worker.busy = True
        try:
            return await self._draw_by(worker, data)
        finally:
            worker.busy = False
            loop = asyncio.get_running_loop()
            worker.used = loop.time()
            if len(self._workers) > 1 and not self._closed:
                loop.call_later(self.spare_idle, self._retire, worker)
            self._idle.put_nowait(worker)

    def _retire(self, worker: _Worker) -> None:
        """Stop a worker that has drawn nothing for `spare_idle` seconds, if another is running (a chart
        that needs it again starts a new one)."""
        if worker.busy or worker.proc is None or self._closed:
            return
        if asyncio.get_running_loop().time() - worker.used < self.spare_idle - 0.001:
            return  # it drew again since; that chart's own timer decides
        if not any(w.proc is not None for w in self._workers if w is not worker):
            return  # the last one running stays warm
        proc, worker.proc = worker.proc, None
        task = asyncio.get_running_loop().create_task(self._end(proc))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _in_thread(self, data: ChartData) -> bytes:
        async with self._thread_lock:
            return await asyncio.to_thread(draw_progress, data)

    async def _draw_by(self, worker: _Worker, data: ChartData) -> bytes:
        if self._closed:
            raise RuntimeError("the chart renderer is closed")
        proc = await self._start(worker)
        if proc is None:  # no worker could start: drawn in a thread from now on
            return await self._in_thread(data)
        assert proc.stdin is not None and proc.stdout is not None
        request = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(len(request).to_bytes(4, "big") + request)
            await proc.stdin.drain()
            head = await proc.stdout.readexactly(5)
            body = await proc.stdout.readexactly(int.from_bytes(head[1:], "big"))
        except (OSError, asyncio.IncompleteReadError) as e:
            log.warning("a chart worker process died; a new one starts with its next chart")
            await self._stop(worker)
            raise ChartError(f"the chart worker process died ({e.__class__.__name__})") from None
        except BaseException:  # cancelled halfway through an exchange: the stream is out of step
            self._kill(worker)
            raise
        worker.drawn += 1
        if head[0] != 0:
            raise ChartError(body.decode("utf-8", "replace"))
        return body

    async def _start(self, worker: _Worker) -> asyncio.subprocess.Process | None:
        """The worker's running process (a new one after `CHARTS_PER_WORKER` charts or when it has exited);
        None (logged once) if no worker process can start."""
        if worker.proc is not None and (worker.proc.returncode is not None or worker.drawn >= CHARTS_PER_WORKER):
            await self._stop(worker)
        if worker.proc is None:
            env = dict(os.environ)
            # The bot's own folder first, so the worker imports this same code whether or not it is installed.
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_SOURCE_ROOT), env.get("PYTHONPATH")) if p)
            try:
                worker.proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    __name__,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                )
            except OSError as e:
                if not self.in_process:
                    log.warning("cannot start a chart worker process (%s); drawing charts in a thread instead", e)
                self.in_process = True
                return None
            worker.drawn = 0
        return worker.proc

    def _kill(self, worker: _Worker) -> None:
        proc, worker.proc = worker.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            self._dying.add(proc)

    async def _stop(self, worker: _Worker) -> None:
        """Let the worker finish (end of its input) and wait for it; killed if it takes over 10 s."""
        proc, worker.proc = worker.proc, None
        await self._end(proc)

    async def _end(self, proc: asyncio.subprocess.Process | None) -> None:
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        """Stop the worker processes that were started. Safe to call twice."""
        self._closed = True
        await asyncio.gather(*(self._stop(w) for w in self._workers), *self._retiring)
        while self._dying:
            await self._dying.pop().wait()


class ChartError(Exception):
    """A chart could not be drawn in the worker process (the worker's error, or it died)."""


#: The folder that holds the ``bot`` package (the worker imports this same code).
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker's loop: a length-prefixed pickled `ChartData` in, then status (0 drawn, 1 failed), length
    and the PNG (or the error) out, until the end of input."""
    while len(head := stdin.read(4)) == 4:
        data = pickle.loads(stdin.read(int.from_bytes(head, "big")))
        try:
            out, status = draw_progress(data), 0
        except Exception as e:
            out, status = f"{e.__class__.__name__}: {e}".encode(), 1
        stdout.write(bytes([status]) + len(out).to_bytes(4, "big") + out)
        stdout.flush()


#: The worker's niceness: a chart is a follow-up that may wait, so while members' commands and clicks
#: are being answered on the same cores the scheduler gives the bot the CPU first.
WORKER_NICENESS = 10


if __name__ == "__main__":
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    _serve(sys.stdin.buffer, sys.stdout.buffer)
