# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the collection against a hand-written shell script (issue 9).

Usage (as root, from the repository root; re-runs itself inside tests/sandbox.sh):

    make bench                                  # the default (--quick): N=10,50, 1 run, both workloads
    .venv/bin/python bench/run.py --full        # N=10,50,200, 3 runs each (~10 min per workload)
    .venv/bin/python bench/run.py --n 10,50 --runs 5 --workloads 1
    .venv/bin/python bench/run.py --profile 50 [--workloads 2]   # cProfile of the compose module
    .venv/bin/pip install -r bench/requirements.txt               # matplotlib, for the plot

Workloads (bench/workloads.py): 1 = network only (netns + veth on br0 + address +
lo up + default route), 2 = full containers (plus cgroup memory/cpu/pids limits,
overlay rootfs on a busybox image, a running ``sleep``).

Contenders, measured in the same run on the same host, in this order per run:
  f  empty play on the same inventory and vars (Ansible's fixed start-up cost)
  a  the floor: a generated bash script (ip, mount, nsenter/unshare, cgroup
     file writes); its teardown script is timed too (a_down)
  c  playbooks/build_container.yml, first run
  d  build_container.yml again (no-op re-run; must report changed=0)
  e  playbooks/teardown.yml
  b  the naive playbook: one command/shell task per hand step with loop: - only for
     N <= --naive-max (default 10; --full: 50), with --naive-runs runs (default 1);
     larger N are extrapolated linearly from the largest measured N and marked "est."
Every figure is the median of --runs runs (min and max shown). Between runs the
sandbox is reset and verified empty (no netns, only lo, no mounts under the
bench's temp dir, no cgroups beneath the bench's parents, no processes left).
Workload 2's playbook contenders run only if build_container.yml starts the
processes (probed at N=2); otherwise they are recorded as "not supported yet".

Results: bench/results/<timestamp>.{md,json,png} and latest.{md,json,png};
per-task breakdowns of c/d/e are in the JSON. Targets (issue 9) are printed as
PASS/FAIL; this is a report, nothing asserts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import workloads as W  # noqa: E402

RESULTS = os.path.join(HERE, "results")
INVENTORY = os.path.join(REPO, "playbooks", "inventory", "localhost.yml")
BUILD = os.path.join(REPO, "playbooks", "build_container.yml")
TEARDOWN = os.path.join(REPO, "playbooks", "teardown.yml")
MODULE_PYTHON = "/usr/bin/python3"  # the inventory's interpreter
STATE_DIR = "/run/handbuilt"        # the sandbox's private tmpfs
CONTENDERS = {
    "f": "empty play (f)",
    "a": "floor: bash script (a)",
    "a_down": "floor teardown script",
    "b": "naive playbook (b)",
    "c": "build_container.yml first run (c)",
    "d": "build_container.yml no-op re-run (d)",
    "e": "teardown.yml (e)",
}
WORKLOAD_LABELS = {1: "network only", 2: "full containers"}
LOAD_START = open("/proc/loadavg").read().split()[:3]


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def sh(*argv, check=False):
    return subprocess.run(argv, capture_output=True, text=True, check=check)


# --- the sandbox's state: reset and verify ------------------------------------------
class Sandbox:
    def __init__(self, tmp, parents):
        self.tmp = tmp
        self.parents = parents  # cgroup parent dir names beneath our own cgroups
        self.pid = os.getpid()
        self.own_net = os.stat("/proc/self/ns/net").st_ino

    def netns_inodes(self):
        out = {}
        for name in os.listdir("/run/netns"):
            try:
                out[name] = os.stat("/run/netns/" + name).st_ino
            except OSError:
                pass
        return out

    def stray_processes(self):
        """Processes in the sandbox's netns or in any netns under /run/netns (not us)."""
        nets = set(self.netns_inodes().values()) | {self.own_net}
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.pid:
                continue
            try:
                ino = os.stat("/proc/%s/ns/net" % entry).st_ino
                with open("/proc/%s/stat" % entry) as fh:
                    stat = fh.read()
            except OSError:
                continue
            state = stat[stat.rfind(")") + 2:].split()[0]
            if ino in nets and state != "Z":
                found.append(int(entry))
        return found

    def cgroup_roots(self):
        """Our parents' directories in every cgroup hierarchy (existing or not)."""
        mounts = {}
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, right = line.split(" - ", 1)
                fstype, _src, opts = right.split()[:3]
                if fstype == "cgroup":
                    for opt in opts.split(","):
                        mounts.setdefault(opt, left.split()[4])
                elif fstype == "cgroup2":
                    mounts.setdefault("", left.split()[4])
        roots = []
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _h, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(","):
                    if c in mounts:
                        for parent in self.parents:
                            roots.append(os.path.normpath("%s/%s/%s" % (mounts[c], path, parent)))
        return sorted(set(roots))

    def mounts_under_tmp(self):
        with open("/proc/self/mountinfo") as fh:
            points = [line.split()[4] for line in fh]
        return [p for p in points if p == self.tmp or p.startswith(self.tmp + "/")]

    def leftovers(self):
        """Everything still there that a contender created (empty dict = clean)."""
        left = {}
        ns = sorted(os.listdir("/run/netns"))
        if ns:
            left["netns"] = ns
        links = [l.split(": ")[1].split("@")[0] for l in sh("ip", "-o", "link").stdout.splitlines()]
        links = [l for l in links if l != "lo"]
        if links:
            left["links"] = links
        mounts = self.mounts_under_tmp()
        if mounts:
            left["mounts"] = mounts
        cgroups = [r for r in self.cgroup_roots() if os.path.isdir(r)]
        if cgroups:
            left["cgroups"] = cgroups
        procs = self.stray_processes()
        if procs:
            left["processes"] = procs
        return left

    def reset(self, data_dir):
        """Remove whatever is left, by force; then wait until the kernel agrees."""
        for dummy in range(3):
            procs = self.stray_processes()
            if not procs:
                break
            for pid in procs:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            deadline = time.time() + 10
            while time.time() < deadline and self.stray_processes():
                time.sleep(0.05)
        for point in sorted(self.mounts_under_tmp(), key=len, reverse=True):
            if sh("umount", point).returncode != 0:
                sh("umount", "-l", point)
        for root in self.cgroup_roots():
            for dummy in range(50):
                if not os.path.isdir(root):
                    break
                busy = False
                for dirpath, _dirs, _files in os.walk(root, topdown=False):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        busy = True
                if not busy:
                    break
                time.sleep(0.1)
        for name in os.listdir("/run/netns"):
            sh("ip", "netns", "del", name)
            if os.path.exists("/run/netns/" + name):
                sh("umount", "-l", "/run/netns/" + name)
                try:
                    os.unlink("/run/netns/" + name)
                except OSError:
                    pass
        for line in sh("ip", "-o", "link").stdout.splitlines():
            name = line.split(": ")[1].split("@")[0]
            if name != "lo":
                sh("ip", "link", "del", name)
        if shutil.which("nft"):
            sh("nft", "flush", "ruleset")  # the sandbox's own netns ruleset
        os.makedirs(STATE_DIR, exist_ok=True)  # teardown may remove the state dir itself
        for entry in os.listdir(STATE_DIR):
            path = os.path.join(STATE_DIR, entry)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
        if os.path.isdir(data_dir):
            shutil.rmtree(data_dir, ignore_errors=True)
        os.makedirs(data_dir, exist_ok=True)
        deadline = time.time() + 20
        while True:
            left = self.leftovers()
            if not left or time.time() > deadline:
                break
            time.sleep(0.05)
        if left:
            raise RuntimeError("sandbox not empty after reset: %s" % left)

    def built(self, n, workload):
        """Does the host hold what the workload declares? {check: ok?} (cheap sample)."""
        names = W.names(n)
        checks = {}
        checks["netns"] = sorted(os.listdir("/run/netns")) == names
        ports = sh("ip", "-o", "link", "show", "master", W.BRIDGE).stdout.splitlines()
        checks["veths on bridge, up"] = len(ports) == n and all("state UP" in p or "LOWER_UP" in p for p in ports)
        for i in sorted({0, n - 1}):
            name = names[i]
            addr = sh("ip", "-n", name, "-4", "-o", "addr", "show", "eth0").stdout
            route = sh("ip", "-n", name, "route", "show", "default").stdout
            lo = sh("ip", "-n", name, "-o", "link", "show", "lo").stdout
            checks["%s address/route/lo" % name] = (
                W.address(i) in addr and str(W.GATEWAY) in route and ",UP" in lo)
        if workload == 2:
            inodes = self.netns_inodes()
            sleeping = set()
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open("/proc/%s/comm" % entry) as fh:
                        comm = fh.read().strip()
                    ino = os.stat("/proc/%s/ns/net" % entry).st_ino
                except OSError:
                    continue
                if comm == "sleep":
                    sleeping.add(ino)
            checks["a sleep in every netns"] = all(inodes.get(nm) in sleeping for nm in names)
            with open("/proc/self/mountinfo") as fh:
                overlays = [l for l in fh if " - overlay " in l and self.tmp in l]
            checks["overlay mounts"] = len(overlays) == n
        return checks


# --- running contenders ------------------------------------------------------------
class Runner:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.pid = os.getpid()
        self.parent = "hbbench-%d" % self.pid          # the collection's cgroup parent
        self.floor_parent = "hbbench-floor-%d" % self.pid
        self.data_dir = os.path.join(tmp, "data")
        self.sandbox = Sandbox(tmp, [self.parent, self.floor_parent])
        self.playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        if not os.path.exists(self.playbook_bin):
            self.playbook_bin = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
        self.env = dict(os.environ,
                        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
                        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
                        ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                        ANSIBLE_CALLBACKS_ENABLED="bench_timer",
                        ANSIBLE_NOCOLOR="1")
        self.logs = os.path.join(tmp, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.seq = 0

    def reset(self):
        self.sandbox.reset(self.data_dir)

    def files(self, n, workload):
        d = os.path.join(self.tmp, "w%d-n%d" % (workload, n))
        if os.path.isdir(d):
            return d
        os.makedirs(d)
        W.dump(os.path.join(d, "vars.json"),
               W.playbook_vars(n, workload, self.data_dir, self.parent, self.pid))
        W.dump(os.path.join(d, "empty.yml"), W.EMPTY_PLAY)
        W.dump(os.path.join(d, "naive.yml"), W.naive_playbook(n, workload, self.data_dir, self.floor_parent))
        for name, text in (("floor.sh", W.floor_up(n, workload, self.data_dir, self.floor_parent)),
                           ("floor-down.sh", W.floor_down(n, workload, self.data_dir, self.floor_parent))):
            with open(os.path.join(d, name), "w") as fh:
                fh.write(text)
        return d

    def playbook(self, playbook, varsfile, what):
        self.seq += 1
        timer = os.path.join(self.logs, "%03d-%s.jsonl" % (self.seq, what))
        logfile = os.path.join(self.logs, "%03d-%s.log" % (self.seq, what))
        argv = [self.playbook_bin, "-i", INVENTORY, playbook, "-e", "@" + varsfile]
        env = dict(self.env, HANDBUILT_BENCH_TIMER=timer)
        with open(logfile, "w") as out:
            t0 = time.perf_counter()
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, check=False)
            seconds = time.perf_counter() - t0
        tasks, stats = [], {}
        if os.path.exists(timer):
            with open(timer) as fh:
                for line in fh:
                    rec = json.loads(line)
                    if rec["kind"] == "task":
                        tasks.append(rec)
                    else:
                        stats = rec["hosts"].get("localhost", {})
        tail = ""
        if proc.returncode != 0:
            with open(logfile) as fh:
                tail = fh.read()[-3000:]
        return dict(seconds=seconds, rc=proc.returncode, stats=stats, tasks=tasks, tail=tail)

    def script(self, path):
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", path], capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t0
        return dict(seconds=seconds, rc=proc.returncode, tail=proc.stderr[-3000:])


def summarize(samples):
    vals = [s for s in samples if s is not None]
    if not vals:
        return None
    return dict(median=statistics.median(vals), min=min(vals), max=max(vals), runs=vals)


def probe_full_playbook(runner):
    """Does build_container.yml start full containers yet? (N=2, then teardown)"""
    runner.reset()
    d = runner.files(2, 2)
    res = runner.playbook(BUILD, os.path.join(d, "vars.json"), "probe-build")
    checks = runner.sandbox.built(2, 2)
    runner.playbook(TEARDOWN, os.path.join(d, "vars.json"), "probe-teardown")
    runner.reset()
    ok = res["rc"] == 0 and all(checks.values())
    reason = None
    if not ok:
        failed = [k for k, v in checks.items() if not v]
        reason = "build_container.yml at N=2: rc=%d, checks failed: %s" % (res["rc"], failed)
        if res["rc"] != 0:
            reason += "; output tail: " + res["tail"][-600:].replace("\n", " ")
    return ok, reason


def measure(runner, args):
    data = {"workloads": {}}
    for workload in args.workloads:
        wres = {"label": WORKLOAD_LABELS[workload], "n": {}, "notes": []}
        data["workloads"][str(workload)] = wres
        playbooks_ok = True
        if workload == 2 and args.skip_full_playbooks:
            playbooks_ok, wres["playbooks"] = False, "skipped (--skip-full-playbooks)"
        elif workload == 2:
            log("workload 2: probing build_container.yml with 2 full containers")
            playbooks_ok, reason = probe_full_playbook(runner)
            wres["playbooks"] = "supported" if playbooks_ok else "not supported yet: " + reason
            log("workload 2 playbooks: " + wres["playbooks"][:300])
        else:
            wres["playbooks"] = "supported"
        for n in args.n:
            d = runner.files(n, workload)
            varsfile = os.path.join(d, "vars.json")
            samples = {k: [] for k in CONTENDERS}
            extra = {"checks": {}, "changed": {}, "leftovers_after_teardown": [], "tasks": {},
                     "failures": []}
            for run in range(args.runs):
                log("workload %d, N=%d, run %d/%d" % (workload, n, run + 1, args.runs))
                runner.reset()
                r = runner.playbook(os.path.join(d, "empty.yml"), varsfile, "w%d-n%d-empty" % (workload, n))
                samples["f"].append(r["seconds"])
                r = runner.script(os.path.join(d, "floor.sh"))
                if r["rc"] != 0:
                    extra["failures"].append("floor rc=%d: %s" % (r["rc"], r["tail"]))
                samples["a"].append(r["seconds"])
                extra["checks"]["a"] = runner.sandbox.built(n, workload)
                r = runner.script(os.path.join(d, "floor-down.sh"))
                if r["rc"] != 0:
                    extra["failures"].append("floor teardown rc=%d: %s" % (r["rc"], r["tail"]))
                samples["a_down"].append(r["seconds"])
                extra["leftovers_after_floor_teardown"] = runner.sandbox.leftovers()
                if playbooks_ok:
                    runner.reset()
                    for key, pb in (("c", BUILD), ("d", BUILD), ("e", TEARDOWN)):
                        r = runner.playbook(pb, varsfile, "w%d-n%d-%s" % (workload, n, key))
                        if r["rc"] != 0:
                            extra["failures"].append("%s rc=%d: %s" % (key, r["rc"], r["tail"]))
                            samples[key].append(None)
                        else:
                            samples[key].append(r["seconds"])
                        extra["changed"].setdefault(key, []).append(r["stats"].get("changed"))
                        extra["tasks"][key] = r["tasks"]
                        if key == "c":
                            extra["checks"]["c"] = runner.sandbox.built(n, workload)
                        if key == "e":
                            extra["leftovers_after_teardown"].append(runner.sandbox.leftovers())
                if n <= args.naive_max and run < args.naive_runs:
                    runner.reset()
                    log("workload %d, N=%d: naive playbook" % (workload, n))
                    r = runner.playbook(os.path.join(d, "naive.yml"), varsfile, "w%d-n%d-naive" % (workload, n))
                    if r["rc"] != 0:
                        extra["failures"].append("naive rc=%d: %s" % (r["rc"], r["tail"]))
                        samples["b"].append(None)
                    else:
                        samples["b"].append(r["seconds"])
                    extra["checks"]["b"] = runner.sandbox.built(n, workload)
                    runner.script(os.path.join(d, "floor-down.sh"))
                runner.reset()
            figures = {k: summarize(v) for k, v in samples.items()}
            wres["n"][str(n)] = dict(figures=figures, **extra)
            log("workload %d, N=%d: %s" % (workload, n, ", ".join(
                "%s=%.2fs" % (k, v["median"]) for k, v in figures.items() if v)))
        # The naive playbook beyond --naive-max: linear in its task items.
        measured = [n for n in args.n if wres["n"][str(n)]["figures"]["b"]]
        if measured:
            ref = max(measured)
            fig_b = wres["n"][str(ref)]["figures"]["b"]["median"]
            fig_f = wres["n"][str(ref)]["figures"]["f"]["median"]
            for n in args.n:
                entry = wres["n"][str(n)]["figures"]
                if entry["b"] is None:
                    est = entry["f"]["median"] + (fig_b - fig_f) * n / ref
                    entry["b"] = dict(median=est, min=est, max=est, runs=[], estimated=True,
                                      basis="f + (b-f at N=%d) x N/%d" % (ref, ref))
    return data


# --- targets and reports --------------------------------------------------------------
def med(figs, key):
    return figs[key]["median"] if figs.get(key) else None


def targets(data, ns):
    out = []
    for w, wres in data["workloads"].items():
        ref = "50" if "50" in wres["n"] else str(ns[len(ns) // 2])

        def row(name, value, limit, ok, detail, n=ref):
            out.append(dict(workload=int(w), target=name, n=int(n), value=value, limit=limit,
                            status=("PASS" if ok else "FAIL") if ok is not None else "n/a",
                            detail=detail))

        figs = wres["n"][ref]["figures"]
        a, f = med(figs, "a"), med(figs, "f")
        c, d, e, b = (med(figs, k) for k in "cdeb")
        if c is None:
            note = wres.get("playbooks", "no data")
            for t in ("first run (c-f) <= 3a", "no-op (d-f) <= 1a", "teardown (e-f) <= 3a",
                      "naive b >= 10 x c", "per-container c(200) <= 1.5 x c(10)",
                      "no-op per extra container <= a's"):
                row(t, None, None, None, note)
            continue
        row("first run (c-f) <= 3a", (c - f) / a, 3.0, (c - f) <= 3 * a,
            "c-f = %.2f s, a = %.2f s" % (c - f, a))
        row("no-op (d-f) <= 1a", (d - f) / a, 1.0, (d - f) <= a, "d-f = %.2f s, a = %.2f s" % (d - f, a))
        row("teardown (e-f) <= 3a", (e - f) / a, 3.0, (e - f) <= 3 * a,
            "e-f = %.2f s, a = %.2f s" % (e - f, a))
        if b is not None:
            est = " (b estimated)" if figs["b"].get("estimated") else ""
            row("naive b >= 10 x c", b / c, 10.0, b >= 10 * c, "b = %.1f s, c = %.2f s%s" % (b, c, est))
        else:
            row("naive b >= 10 x c", None, 10.0, None, "naive not measured")
        lo_n, hi_n = str(min(ns)), str(max(ns))
        lo, hi = wres["n"][lo_n]["figures"], wres["n"][hi_n]["figures"]
        if int(hi_n) >= 200 and int(lo_n) <= 10:
            per_lo = (med(lo, "c") - med(lo, "f")) / int(lo_n)
            per_hi = (med(hi, "c") - med(hi, "f")) / int(hi_n)
            row("per-container c(200) <= 1.5 x c(10)", per_hi / per_lo, 1.5, per_hi <= 1.5 * per_lo,
                "(c-f)/N: %.1f ms at N=%s, %.1f ms at N=%s" % (per_lo * 1e3, lo_n, per_hi * 1e3, hi_n),
                n=hi_n)
        else:
            row("per-container c(200) <= 1.5 x c(10)", None, 1.5, None, "needs N=10 and N=200 (--full)",
                n=hi_n)
        # What the no-op target means once a run's fixed cost (one module's start-up, the
        # roles' tasks) is set aside: each more container costs less to check than to build.
        if lo_n != hi_n:
            span = int(hi_n) - int(lo_n)
            slope_d = (med(hi, "d") - med(lo, "d")) / span
            slope_a = (med(hi, "a") - med(lo, "a")) / span
            row("no-op per extra container <= a's", slope_d / slope_a, 1.0, slope_d <= slope_a,
                "N=%s..%s: d %.1f ms, a %.1f ms per container" % (lo_n, hi_n, slope_d * 1e3,
                                                                  slope_a * 1e3), n=hi_n)
        else:
            row("no-op per extra container <= a's", None, 1.0, None, "needs two values of N", n=hi_n)
    return out


def fmt(fig):
    if not fig:
        return "-"
    if fig.get("estimated"):
        return "~%.1f (est.)" % fig["median"]
    if len(fig["runs"]) == 1:
        return "%.2f" % fig["median"]
    return "%.2f (%.2f-%.2f)" % (fig["median"], fig["min"], fig["max"])


def markdown(data, meta, tgts, png_name):
    lines = ["# Benchmark results (%s)" % meta["date"], "",
             "Host: %s, %s CPUs, kernel %s; ansible-core %s; module Python %s; commit %s%s." % (
                 meta["host"], meta["cpus"], meta["kernel"], meta["ansible"], meta["module_python"],
                 meta["commit"], " (dirty tree)" if meta["dirty"] else ""),
             "Seconds, median (min-max) of %d run(s); naive playbook: %s." % (
                 meta["runs"], meta["naive"]),
             "Load average (1, 5, 15 min) at start %s, at end %s (other work on the host adds noise)." % (
                 " ".join(meta.get("loadavg_start", "?")), " ".join(meta.get("loadavg_end", "?"))), ""]
    for w, wres in data["workloads"].items():
        ns = list(wres["n"])
        lines += ["## Workload %s: %s" % (w, wres["label"]), "",
                  "Playbooks: %s" % wres.get("playbooks"), "",
                  "| contender | " + " | ".join("N=%s" % n for n in ns) + " |",
                  "|---|" + "---|" * len(ns)]
        for key in ("a", "a_down", "b", "c", "d", "e", "f"):
            lines.append("| %s | " % CONTENDERS[key] + " | ".join(
                fmt(wres["n"][n]["figures"][key]) for n in ns) + " |")
        derived = []
        for n in ns:
            fg = wres["n"][n]["figures"]
            a, f, c, d, e, b = (med(fg, k) for k in ("a", "f", "c", "d", "e", "b"))
            derived.append((n, a, f, c, d, e, b))
        if any(x[3] is not None for x in derived):
            lines.append("| **c-f, per container (ms)** | " + " | ".join(
                "%.1f" % ((c - f) / int(n) * 1e3) if c else "-" for n, a, f, c, d, e, b in derived) + " |")
            lines.append("| floor a, per container (ms) | " + " | ".join(
                "%.1f" % (a / int(n) * 1e3) for n, a, f, c, d, e, b in derived) + " |")
            for label, fn in (("(c-f)/a", lambda a, f, c, d, e, b: (c - f) / a),
                              ("(d-f)/a", lambda a, f, c, d, e, b: (d - f) / a),
                              ("(e-f)/a", lambda a, f, c, d, e, b: (e - f) / a),
                              ("b/c", lambda a, f, c, d, e, b: b / c if b else None)):
                vals = []
                for n, a, f, c, d, e, b in derived:
                    v = fn(a, f, c, d, e, b) if c else None
                    vals.append("%.2f" % v if v is not None else "-")
                lines.append("| %s | " % label + " | ".join(vals) + " |")
        noop = {n: wres["n"][n].get("changed", {}).get("d") for n in ns}
        if any(noop.values()):
            lines += ["", "No-op re-run `changed` counts per run: %s" % noop]
        leaks = {n: [x for x in wres["n"][n].get("leftovers_after_teardown", []) if x] for n in ns}
        leaks = {n: v for n, v in leaks.items() if v}
        lines += ["", "Left behind by teardown.yml (before the bench's forced reset): %s"
                  % (leaks or "nothing")]
        big = wres["n"][ns[-1]].get("tasks") or {}
        if big.get("c"):
            lines += ["", "Where the time goes at N=%s (last run; seconds per task, from bench_timer):" % ns[-1], "",
                      "| task | c first run | d no-op | e teardown |", "|---|---|---|---|"]
            rows = {}
            for key in ("c", "d", "e"):
                for t in big.get(key) or []:
                    name = t["task"].split(" : ")[-1][:70]
                    rows.setdefault(name, {})[key] = rows.get(name, {}).get(key, 0) + t["seconds"]
            for name, v in rows.items():
                if max(v.values()) >= 0.05:
                    lines.append("| %s | %s |" % (name, " | ".join(
                        "%.2f" % v[k] if k in v else "" for k in ("c", "d", "e"))))
        fails = {n: wres["n"][n].get("failures") for n in ns if wres["n"][n].get("failures")}
        if fails:
            lines += ["", "Failures: " + "; ".join("N=%s: %s" % (n, " | ".join(f[:300] for f in v))
                                                   for n, v in fails.items())]
        lines.append("")
    lines += ["## Targets (issue 9)", "", "| workload | target | N | value | limit | result | detail |",
              "|---|---|---|---|---|---|---|"]
    for t in tgts:
        lines.append("| %d | %s | %d | %s | %s | %s | %s |" % (
            t["workload"], t["target"], t["n"], "%.2f" % t["value"] if t["value"] is not None else "-",
            t["limit"] if t["limit"] is not None else "-", t["status"], t["detail"]))
    if png_name:
        lines += ["", "![time against N](%s)" % png_name]
    return "\n".join(lines) + "\n"


def plot(data, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no plot. Install it with: "
            "%s -m pip install -r bench/requirements.txt" % sys.executable)
        return False
    wls = list(data["workloads"].items())
    fig, axes = plt.subplots(1, len(wls), figsize=(6.5 * len(wls), 4.8), squeeze=False)
    styles = {"a": "k-o", "a_down": "k:o", "b": "r-s", "c": "b-^", "d": "g-v", "e": "m-D", "f": "y-x"}
    for ax, (w, wres) in zip(axes[0], wls):
        ns = [int(n) for n in wres["n"]]
        for key, style in styles.items():
            pts = [(n, wres["n"][str(n)]["figures"][key]) for n in ns]
            pts = [(n, fg) for n, fg in pts if fg]
            if not pts:
                continue
            xs = [n for n, dummy in pts]
            ys = [fg["median"] for dummy, fg in pts]
            err = [[fg["median"] - fg["min"] for dummy, fg in pts], [fg["max"] - fg["median"] for dummy, fg in pts]]
            line = ax.errorbar(xs, ys, yerr=err, fmt=style, capsize=3, label=CONTENDERS[key], markersize=4)
            est = [(n, fg["median"]) for n, fg in pts if fg.get("estimated")]
            if est:
                ax.plot([e[0] for e in est], [e[1] for e in est], "o", mfc="none", mec=line[0].get_color(),
                        markersize=10, label="%s, estimated" % key)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel("containers (N)")
        ax.set_ylabel("seconds (median; bars: min-max)")
        ax.set_title("workload %s: %s" % (w, wres["label"]))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def meta_info(args):
    def out(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False).stdout.strip()
        except OSError:
            return "?"
    ansible = out(os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--version")
    ansible = ansible.splitlines()[0].split("core ")[-1].rstrip("]") if ansible else "?"
    return dict(date=datetime.datetime.now().isoformat(timespec="seconds"), host=socket.gethostname(),
                cpus=os.cpu_count(), kernel=platform.release(), ansible=ansible,
                module_python=out(MODULE_PYTHON, "--version").split()[-1],
                commit=out("git", "rev-parse", "--short", "HEAD"),
                dirty=bool(out("git", "status", "--porcelain", "--untracked-files=no")),
                runs=args.runs, n=args.n, workloads=args.workloads,
                loadavg_start=LOAD_START, loadavg_end=open("/proc/loadavg").read().split()[:3],
                naive="measured for N <= %d (%d run(s)), extrapolated linearly above" % (
                    args.naive_max, args.naive_runs))


def write_results(data, meta, tgts):
    os.makedirs(RESULTS, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    png = os.path.join(RESULTS, stamp + ".png")
    have_png = plot(data, png)
    if have_png:
        shutil.copyfile(png, os.path.join(RESULTS, "latest.png"))
    for name, png_name in ((stamp, stamp + ".png"), ("latest", "latest.png")):
        with open(os.path.join(RESULTS, name + ".md"), "w") as fh:
            fh.write(markdown(data, meta, tgts, png_name if have_png else None))
        with open(os.path.join(RESULTS, name + ".json"), "w") as fh:
            json.dump(dict(meta=meta, targets=tgts, **data), fh, indent=1, default=str)
    return os.path.join(RESULTS, stamp)


# --- profile mode -------------------------------------------------------------------
def profile(runner, args, n):
    workload = args.workloads[-1]
    runner.reset()
    d = runner.files(n, workload)
    with open(os.path.join(d, "vars.json")) as fh:
        v = json.load(fh)
    # The bridge (and for workload 2 the image) from the playbook with no containers.
    empty = dict(v, handbuilt_containers=[])
    empty_vars = W.dump(os.path.join(d, "vars-empty.json"), empty)
    r = runner.playbook(BUILD, empty_vars, "profile-setup")
    if r["rc"] != 0:
        log("setup with an empty container list failed; creating the bridge by hand")
        for line in W.floor_up(0, 1, runner.data_dir, runner.floor_parent).splitlines()[3:]:
            sh(*line.split())
    net = v["handbuilt_network"]
    params = dict(workload=workload, containers=[dict(c, image=c.get("image", "busybox"))
                                                 for c in v["handbuilt_containers"]],
                  bridge=net["bridge"], subnet=net["subnet"], gateway=net["gateway"], state_dir=STATE_DIR,
                  data_dir=v["handbuilt_data_dir"], cgroup_parent=v["handbuilt_cgroup_parent"],
                  cgroup_relative_to_pid=v["handbuilt_cgroup_relative_to_pid"])
    args_path = W.dump(os.path.join(d, "profile-args.json"), params)
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, "profile-w%d-n%d.txt" % (workload, n))
    proc = subprocess.run([MODULE_PYTHON, os.path.join(HERE, "profile_compose.py"), args_path, out],
                          capture_output=True, text=True, check=False)
    built = runner.sandbox.leftovers()
    runner.reset()
    if proc.returncode != 0:
        log("profile failed:\n" + proc.stderr[-3000:])
        return 1
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    log("profile (workload %d, N=%d): %s" % (workload, n, json.dumps(summary)))
    if built:
        log("after the profiled teardown (before reset) the sandbox still had: %s" % built)
    log("written: " + out)
    return 0


# --- main -----------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="the default (what make bench runs): N=10,50, 1 run, naive measured at N=10 only")
    p.add_argument("--full", action="store_true",
                   help="the full matrix: N=10,50,200, 3 runs, naive measured up to N=50")
    p.add_argument("--n", help="comma-separated container counts (default 10,50; --full 10,50,200)")
    p.add_argument("--runs", type=int, help="runs per figure (default 1; --full 3)")
    p.add_argument("--workloads", default="1,2", help="1 = network only, 2 = full containers (default 1,2)")
    p.add_argument("--naive-max", type=int, help="largest N for the naive playbook (default 10; --full 50)")
    p.add_argument("--naive-runs", type=int, default=1, help="runs of the naive playbook (default 1)")
    p.add_argument("--skip-full-playbooks", action="store_true",
                   help="workload 2: don't run the collection's playbooks (floor, naive, empty play only)")
    p.add_argument("--profile", type=int, metavar="N",
                   help="instead: profile the compose module's in-process work for N containers")
    p.add_argument("--report", metavar="JSON", help="only re-render .md/.png from a results JSON")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (scripts, logs)")
    args = p.parse_args(argv)
    if args.quick and args.full:
        p.error("--quick or --full, not both")
    args.quick = not args.full
    args.n = [int(x) for x in args.n.split(",")] if args.n else ([10, 50] if args.quick else [10, 50, 200])
    args.runs = args.runs or (1 if args.quick else 3)
    args.naive_max = args.naive_max if args.naive_max is not None else (10 if args.quick else 50)
    args.naive_runs = min(args.naive_runs, args.runs)
    args.workloads = [int(x) for x in args.workloads.split(",")]
    return args


def main(argv):
    args = parse_args(argv)
    if args.report:
        with open(args.report) as fh:
            saved = json.load(fh)
        base = os.path.splitext(args.report)[0]
        have_png = plot(saved, base + ".png")
        # The targets are computed again: their definitions may be newer than the run.
        ns = sorted({int(n) for w in saved["workloads"].values() for n in w["n"]})
        with open(base + ".md", "w") as fh:
            fh.write(markdown(saved, saved["meta"], targets(saved, ns),
                              os.path.basename(base) + ".png" if have_png else None))
        print("re-rendered %s.md%s" % (base, " and .png" if have_png else ""))
        return 0
    W.enter_sandbox(__file__, argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("matplotlib is not installed: results come without a plot. Install it with:\n"
            "    %s -m pip install -r bench/requirements.txt" % sys.executable)
    tmp = tempfile.mkdtemp(prefix="hbbench-")
    runner = Runner(args, tmp)
    rc = 0
    try:
        if args.profile:
            return profile(runner, args, args.profile)
        log("N=%s, %d run(s), workloads %s; temp dir %s" % (args.n, args.runs, args.workloads, tmp))
        data = measure(runner, args)
        meta = meta_info(args)
        tgts = targets(data, args.n)
        base = write_results(data, meta, tgts)
        with open(base + ".md") as fh:
            print(fh.read())
        log("results: %s.{md,json,png} and bench/results/latest.*" % base)
        for t in tgts:
            print("%-4s workload %d  %-38s N=%-3d %s"
                  % (t["status"], t["workload"], t["target"], t["n"], t["detail"]))
    except KeyboardInterrupt:
        rc = 130
    finally:
        try:
            runner.reset()
        except Exception as exc:  # report, but still try to remove the temp dir
            log("WARNING: final reset: %s" % exc)
            rc = rc or 1
        left = runner.sandbox.leftovers()
        if left:
            log("WARNING: left behind: %s" % left)
            rc = rc or 1
        if args.keep_tmp:
            log("temp dir kept: " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
