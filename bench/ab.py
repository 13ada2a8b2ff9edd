"""A/B: the same playbooks from two checkouts of the collection, alternated in one run.

Absolute times on a shared machine drift by tens of percent within an hour, so
comparing two bench runs made at different times says little; alternating the two
versions run by run, on the same host state, does. Runs inside tests/sandbox.sh
(re-executes itself there), as root:

    bench/ab.py --old /path/to/old/checkout [--n 50] [--runs 5] [--workloads 1,2]

Each checkout needs its collection linked under <checkout>/.collections (`make setup`
does it). The order alternates (A B, B A, ...): a teardown leaves the kernel cleaning up
for a while, which would otherwise always slow the same version. Per run and version: first run (c), no-op re-run (d), teardown (e), and one
empty play (f) per run; prints medians and the issue-9 ratios against the floor (a)
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import workloads as W  # noqa: E402


def timed(argv, env=None, cwd=REPO):
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit("failed: %s\n%s" % (" ".join(argv), (proc.stdout + proc.stderr)[-3000:]))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the other checkout (version A)")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workloads", default="1,2")
    args = parser.parse_args()
    W.enter_sandbox(__file__, sys.argv[1:])
    playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    inventory = os.path.join(REPO, "playbooks", "inventory", "localhost.yml")
    tmp = tempfile.mkdtemp(prefix="hbab-")
    versions = {"A (old)": os.path.abspath(args.old), "B (this)": REPO}
    parent = "hbab-%d" % os.getpid()
    report = {}
    for workload in [int(w) for w in args.workloads.split(",")]:
        data = os.path.join(tmp, "data")
        varsfile = os.path.join(tmp, "vars-w%d.json" % workload)
        W.dump(varsfile, W.playbook_vars(args.n, workload, data, parent, os.getpid()))
        floor = os.path.join(tmp, "floor.sh")
        floor_down = os.path.join(tmp, "floor-down.sh")
        for path, text in ((floor, W.floor_up(args.n, workload, data, parent + "-floor")),
                           (floor_down, W.floor_down(args.n, workload, data, parent + "-floor"))):
            with open(path, "w") as fh:
                fh.write(text)
        empty = os.path.join(tmp, "empty.yml")
        W.dump(empty, W.EMPTY_PLAY)
        times = {"a": [], "f": []}
        for run in range(args.runs):
            times["a"].append(timed(["bash", floor]))
            timed(["bash", floor_down])
            times["f"].append(timed([playbook_bin, "-i", inventory, empty, "-e", "@" + varsfile]))
            order = list(versions.items())
            if run % 2:
                order.reverse()  # ABBA: whoever runs right after the other's teardown alternates
            for label, root in order:
                env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"),
                           ANSIBLE_COLLECTIONS_PATH=os.path.join(root, ".collections"))
                for step, playbook in (("c", "build_container.yml"), ("d", "build_container.yml"),
                                       ("e", "teardown.yml")):
                    seconds = timed([playbook_bin, "-i", inventory,
                                     os.path.join(root, "playbooks", playbook), "-e", "@" + varsfile],
                                    env=env, cwd=root)
                    times.setdefault((label, step), []).append(seconds)
            print("workload %d run %d/%d done" % (workload, run + 1, args.runs), file=sys.stderr)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows = {"a": med["a"], "f": med["f"]}
        for label in versions:
            for step in "cde":
                rows["%s %s" % (label, step)] = med[(label, step)]
                rows["%s (%s-f)/a" % (label, step)] = (med[(label, step)] - med["f"]) / med["a"]
        # Every run too: the medians alone do not show how far apart the runs were.
        rows["runs"] = {(k if isinstance(k, str) else " ".join(k)): [round(x, 3) for x in v]
                        for k, v in times.items()}
        report["workload %d, N=%d" % (workload, args.n)] = rows
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
