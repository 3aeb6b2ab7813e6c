"""`make bench`: run every benchmark in its own process and print one table.

    python -m bench [ID ...]     e.g. python -m bench P2 P4

Each benchmark prints FIGURE lines (JSON); this runner collects them, prints the table and writes
bench/out/results.json. It exits 0 even when a goal is missed: the table says so.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

from bench.common import OUT, ROOT

BENCHES = {
    "P1": "bench.p1_ack_latency",
    "P2": "bench.p2_answers",
    "P3": "bench.p3_fanout",
    "P4": "bench.p4_queries",
    "P5": "bench.p5_cold_start",
    "P6": "bench.p6_content_burst",
    "R1": "bench.r1_reminders",
    "P7": "bench.p7_dashboard",
}
#: The same figures on PostgreSQL (a throwaway cluster each, as the tests start one): P2PG, P3PG, P4PG, CPG.
BENCHES |= {
    "P2PG": "bench.p2_postgres",
    "P3PG": "bench.p3_postgres",
    "P4PG": "bench.p4_postgres",
    "CPG": "bench.pg_cache",
}


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str]) -> int:
    wanted = [a.upper() for a in argv] or list(BENCHES)
    figures: list[dict[str, object]] = []
    started = time.perf_counter()
    for bid in wanted:
        module = BENCHES.get(bid)
        if module is None:
            print(f"unknown benchmark {bid}; known: {', '.join(BENCHES)}", file=sys.stderr)
            return 2
        print(f"== {bid} ({module})", file=sys.stderr, flush=True)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", module], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        got = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("FIGURE ")]
        if proc.returncode != 0 or not got:
            figures.append(
                {
                    "id": bid,
                    "what": f"{module} failed (exit {proc.returncode})",
                    "value": "-",
                    "unit": "",
                    "goal": "",
                    "ok": False,
                    "note": proc.stdout[-300:],
                }
            )
        figures += got
        print(f"   {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(f"\nstudybot benchmarks — {machine()}\n")
    rows = [("id", "figure", "value", "goal", "result")]
    rows += [
        (
            str(f["id"]),
            str(f["what"]),
            f"{f['value']} {f['unit']}".strip(),
            str(f["goal"]),
            "pass" if f["ok"] else "MISS",
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for f in figures:
        if f.get("note"):
            print(f"{f['id']}: {f['note']}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"machine": machine(), "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
