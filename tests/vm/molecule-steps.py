#!/usr/bin/env python3
"""Pass Molecule's output through, prefixed with the elapsed time, and time each step.

  molecule test -s default 2>&1 | tests/vm/molecule-steps.py [--json FILE] [--label NAME]

Molecule logs "<scenario> ➜ <step>: Executing" and "<scenario> ➜ <step>: Executed: <result>";
the wall time between the two is the step's time. At the end a table is printed, and with
--json the steps are appended (one JSON object per line) to FILE.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STEP = re.compile(r"^(?:INFO|WARNING|ERROR)\s+(\S+)\s+\S+\s+([\w-]+):\s+(Executing|Executed:\s*(.*))$")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json")
    p.add_argument("--label", default="")
    a = p.parse_args()
    t0 = time.monotonic()
    steps: list[dict] = []
    open_steps: dict[tuple[str, str], dict] = {}
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer:
        now = time.monotonic() - t0
        out.write(f"[{now:6.1f}s] ".encode() + raw)
        out.flush()
        m = STEP.match(ANSI.sub("", raw.decode("utf-8", "replace")).strip())
        if not m:
            continue
        scenario, step, what, result = m.groups()
        key = (scenario, step)
        if what == "Executing":
            rec = {"label": a.label, "scenario": scenario, "step": step, "start": round(now, 1)}
            steps.append(rec)
            open_steps[key] = rec
        elif key in open_steps:
            rec = open_steps.pop(key)
            rec["seconds"] = round(now - rec["start"], 1)
            rec["result"] = (result or "").strip()
    total = time.monotonic() - t0
    lines = [f"{'scenario':<12} {'step':<12} {'seconds':>8}  result"]
    for rec in steps:
        secs = f"{rec['seconds']:.1f}" if "seconds" in rec else "?"
        lines.append(f"{rec['scenario']:<12} {rec['step']:<12} {secs:>8}  "
                     f"{rec.get('result', 'did not finish')}")
    lines.append(f"{'':<12} {'total':<12} {total:>8.1f}")
    print("\n== molecule step timings" + (f" ({a.label})" if a.label else "") + " ==",
          file=sys.stdout)
    print("\n".join(lines), flush=True)
    if a.json:
        with open(a.json, "a", encoding="utf-8") as f:
            for rec in steps:
                f.write(json.dumps(rec) + "\n")
            f.write(json.dumps({"label": a.label, "step": "total", "seconds": round(total, 1)})
                    + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
