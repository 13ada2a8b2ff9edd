# -*- coding: utf-8 -*-
"""cgroup and cgroup_info on the real kernel (this machine: cgroup v1 per controller).

Every cgroup is created beneath the test process's own cgroup in each hierarchy
(``relative_to_pid``), under a parent named after this test run. Processes the
tests start are moved in by the module's ``pids`` and killed and reaped here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), ".collections"))

from ansible_collections.handbuilt.containers.plugins.module_utils import cgroup as cg  # noqa: E402

M = "handbuilt.containers."
HOG = os.path.join(HERE, "helpers", "cgroup_hog.py")
PARENT = "hbtest-%d" % os.getpid()
STATE_DIR = "/run/handbuilt"


def where():
    return dict(parent=PARENT, relative_to_pid=os.getpid())


def cgroup(name="box", task=None, **kw):
    args = dict(where(), name=name, **kw)
    return {"name": task or "cgroup %s" % name, M + "cgroup": args}


def info(name="box", task=None):
    return {"name": task or "info %s" % name, M + "cgroup_info": dict(where(), name=name)}


def parent_dirs():
    """The test parent in every hierarchy (whether it exists or not)."""
    layout = cg.Layout.detect()
    mine = layout.pid_cgroups(os.getpid())
    out = []
    for h in layout.all_hierarchies():
        base = layout.path_in(h, mine)
        if base is not None:
            out.append(os.path.normpath(h.mount + "/" + base.strip("/") + "/" + PARENT))
    return out


def tree():
    """Every directory and limit file beneath the test parent, plus the markers."""
    state = {}
    for top in parent_dirs():
        for root, dirs, files in os.walk(top):
            state[root] = sorted(dirs)
            for f in files:
                if f.endswith(("max", "limit_in_bytes", "quota_us", "period_us", "shares",
                               "subtree_control", ".cpus", ".mems", "_device")):
                    with open(os.path.join(root, f)) as fh:
                        state[os.path.join(root, f)] = fh.read()
    marks = os.path.join(STATE_DIR, "cgroups")
    for root, dirs, files in os.walk(marks):
        state[root] = sorted(files)
    return state


def kill_tree(path):
    for child in os.listdir(path):
        if os.path.isdir(os.path.join(path, child)):
            kill_tree(os.path.join(path, child))
    for dummy in range(500):
        with open(os.path.join(path, "cgroup.procs")) as fh:
            pids = [int(p) for p in fh.read().split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.01)


@pytest.fixture(autouse=True)
def clean_cgroups():
    """No test cgroup before or after a test, whatever the module did."""
    for top in parent_dirs():
        if os.path.isdir(top):
            kill_tree(top)
    yield
    leftover = [top for top in parent_dirs() if os.path.isdir(top)]
    for top in leftover:
        kill_tree(top)


class Hog:
    """A helper process that waits for "go" (so it can be moved into a cgroup first)."""

    def __init__(self, mode, arg=""):
        self.proc = subprocess.Popen([sys.executable, HOG, mode, str(arg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.pid = self.proc.pid

    def go(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def output(self, timeout=20):
        out, dummy = self.proc.communicate(timeout=timeout)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def hogs():
    started = []

    def start(mode, arg=""):
        hog = Hog(mode, arg)
        started.append(hog)
        return hog
    yield start
    for hog in started:
        hog.stop()


def my_cgroup(pid, controller):
    with open("/proc/%d/cgroup" % pid) as fh:
        for line in fh:
            dummy, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return path
    return None


# ---------------------------------------------------------------------------
def test_seed_q2_memory_max_50m_oom_kills_a_200mb_allocation(ansible, hogs):
    hog = hogs("mem", 200)
    run = ansible.tasks([cgroup("demo", memory_max="50M", memory_swap_max=0, pids=[hog.pid])])
    assert run.rc == 0, run
    result = run.result("cgroup demo")
    mem_dir = result["cgroup"]["paths"]["memory"]
    assert mem_dir.endswith("/%s/demo" % PARENT)
    with open(os.path.join(mem_dir, "memory.limit_in_bytes")) as fh:
        assert int(fh.read()) == 50 << 20
    assert result["cgroup"]["limits"]["memory_max"] == 50 << 20
    assert hog.pid in result["cgroup"]["pids"]
    assert my_cgroup(hog.pid, "memory").endswith("/%s/demo" % PARENT)
    assert result["cgroup"]["stats"]["memory"]["oom_kill"] == 0
    hog.go()
    assert hog.proc.wait(timeout=30) == -signal.SIGKILL, "the 200 MB allocation was not killed"
    report = ansible.tasks([info("demo")])
    assert report.rc == 0, report
    stats = report.result("info demo")["cgroup"]["stats"]["memory"]
    assert stats["oom_kill"] >= 1, stats
    assert stats["peak"] <= 50 << 20
    down = ansible.tasks([cgroup("demo", state="absent")])
    assert down.rc == 0 and down.changed == 1, down
    assert tree() == {}


def test_cpu_max_is_honoured(ansible, hogs):
    hog = hogs("spin", 2)
    run = ansible.tasks([cgroup("cpu", cpus=0.5, pids=[hog.pid])])
    assert run.rc == 0, run
    cpu_dir = run.result("cgroup cpu")["cgroup"]["paths"]["cpu"]
    assert my_cgroup(hog.pid, "cpu") == "/%s/cpu" % PARENT
    with open(os.path.join(cpu_dir, "cpu.cfs_quota_us")) as fh:
        assert int(fh.read()) == 50000
    hog.go()
    elapsed = json.loads(hog.output())["elapsed"]
    stats = ansible.tasks([info("cpu")]).result("info cpu")["cgroup"]["stats"]["cpu"]
    share = stats["usage_usec"] / 1e6 / elapsed
    # A busy loop alone would use ~1.0 (less on a loaded host, so no lower bound near 0.5).
    assert 0.1 < share < 0.75, (share, stats)
    assert stats["nr_periods"] > 0, stats   # the quota's bandwidth timer ran for this cgroup


def test_pids_max_stops_a_fork_bomb(ansible, hogs):
    hog = hogs("forks", 50)
    run = ansible.tasks([cgroup("bomb", pids_max=5, pids=[hog.pid])])
    assert run.rc == 0, run
    hog.go()
    counts = json.loads(hog.output().splitlines()[0])
    assert counts["forked"] <= 4 and counts["refused"] >= 46, counts
    assert hog.proc.wait(timeout=10) == 0
    stats = ansible.tasks([info("bomb")]).result("info bomb")["cgroup"]["stats"]["pids"]
    assert stats["max_events"] >= 46, stats


def test_check_mode_diff_and_second_run(ansible):
    task = cgroup("web", memory_max="64M", cpu_max="50000 100000", cpu_weight=200, pids_max=64,
                  cpuset_cpus="0", io_max=[{"device": "/dev/vda", "wbps": "10M", "riops": 1000}])
    check = ansible.tasks([task], check=True, diff=True)
    assert check.rc == 0 and check.changed == 1, check
    assert tree() == {}, "check mode created something"
    predicted = check.result("cgroup web")
    assert predicted["diff"]["before"] == {"state": "absent"}
    real = ansible.tasks([task], diff=True)
    assert real.rc == 0 and real.changed == 1, real
    result = real.result("cgroup web")
    assert result["commands"] == predicted["commands"]
    assert result["diff"]["after"] == predicted["diff"]["after"]
    assert any(c.startswith("mkdir /sys/fs/cgroup/memory/") for c in result["commands"])
    assert "echo 67108864 > %s/memory.limit_in_bytes" % result["cgroup"]["paths"]["memory"] \
        in result["commands"]
    limits = result["cgroup"]["limits"]
    assert limits["cpu_weight"] == 200 and limits["cpuset_cpus"] == "0"
    devno = "%d:%d" % (os.major(os.stat("/dev/vda").st_rdev), os.minor(os.stat("/dev/vda").st_rdev))
    assert limits["io_max"] == {devno: {"rbps": "max", "wbps": 10 << 20, "riops": 1000, "wiops": "max"}}
    with open(os.path.join(result["cgroup"]["paths"]["io"], "blkio.throttle.write_bps_device")) as fh:
        assert fh.read().split() == [devno, str(10 << 20)]
    again = ansible.tasks([task], diff=True)
    assert again.rc == 0 and again.changed == 0, again
    assert again.result("cgroup web")["commands"] == []
    assert ansible.tasks([task], check=True).changed == 0
    # Change one limit, remove another: only those two files are written.
    before = tree()
    change = ansible.tasks([cgroup("web", memory_max="max", pids_max=10)], diff=True)
    assert change.rc == 0 and change.changed == 1, change
    diff = change.result("cgroup web")["diff"]
    assert diff["before"]["limits"]["memory_max"] == 64 << 20
    assert diff["after"]["limits"]["memory_max"] == "max"
    assert diff["after"]["limits"]["cpu_max"] == "50000 100000"   # not given: untouched
    after = tree()
    assert sorted(k for k in after if after[k] != before.get(k)) == sorted(
        os.path.join(change.result("cgroup web")["cgroup"]["paths"][c], f)
        for c, f in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")))


def test_absent_with_processes_needs_kill(ansible, hogs):
    sleeper = hogs("sleep")
    assert ansible.tasks([cgroup("app", pids_max=10, pids=[sleeper.pid]),
                          cgroup("app/child", task="child"), cgroup("other", memory_max="10M")]).rc == 0
    before = tree()
    refused = ansible.tasks([dict(cgroup("app", state="absent"), ignore_errors=True)])
    result = refused.result("cgroup app")
    assert result["failed"] and "kill: true" in result["msg"] and str(sleeper.pid) in result["msg"]
    assert tree() == before and sleeper.proc.poll() is None
    down = ansible.tasks([cgroup("app", state="absent", kill=True),
                          cgroup("other", state="absent", task="other"),
                          cgroup("app", state="absent", task="again")])
    assert down.rc == 0 and down.changed == 2, down
    assert sleeper.proc.wait(timeout=10) == -signal.SIGKILL
    app, other = down.result("cgroup app")["commands"], down.result("other")["commands"]
    assert app[0].startswith("kill -KILL $(cat ")
    assert app.index([c for c in app if c.endswith("/app/child")][0]) < app.index(
        [c for c in app if c.endswith("/app") and c.startswith("rmdir")][0]), app
    # The parent stays while "other" lives in it, and goes with the last cgroup.
    assert not any(c.startswith("rmdir") and c.endswith("/" + PARENT) for c in app)
    assert any(c.startswith("rmdir") and c.endswith("/" + PARENT) for c in other)
    assert down.result("again")["changed"] is False
    assert tree() == {}, "leftovers after absent"


def test_foreign_cgroup_refused_unless_force(ansible):
    assert ansible.tasks([cgroup("mine")]).rc == 0
    pids_top = [d for d in parent_dirs() if d.startswith("/sys/fs/cgroup/pids/")][0]
    os.mkdir(os.path.join(pids_top, "handmade"))
    before = tree()
    refused = ansible.tasks([
        dict(cgroup("handmade", pids_max=3), ignore_errors=True),
        dict(cgroup("handmade", state="absent", task="absent"), ignore_errors=True),
        {"name": "all", M + "cgroup_info": where()}])
    for task in ("cgroup handmade", "absent"):
        result = refused.result(task)
        assert result["failed"] and "not created by handbuilt.containers" in result["msg"], result
        assert "force: true" in result["msg"] and result["msg"].startswith("name:")
    assert tree() == before
    listed = refused.result("all")["cgroups"]
    assert {c["name"]: c["owned"] for c in listed} == {"handmade": False, "mine": True}
    forced = ansible.tasks([cgroup("handmade", state="absent", force=True),
                            cgroup("mine", state="absent", task="mine")])
    assert forced.rc == 0 and forced.changed == 2, forced
    assert not os.path.exists(os.path.join(pids_top, "handmade"))
    assert tree() == {}


BAD = [
    (dict(name="../escape"), "name"),
    (dict(name="/abs/path"), "name"),
    (dict(name="memory.max"), "name"),
    (dict(name="ok", parent="a/../b"), "parent"),
    (dict(name="ok", memory_max="50X"), "memory_max"),
    (dict(name="ok", memory_max=-1), "memory_max"),
    (dict(name="ok", cpus=0), "cpus"),
    (dict(name="ok", cpus=4096), "cpus"),
    (dict(name="ok", cpu_max="50000"), "cpu_max"),
    (dict(name="ok", cpu_max="50000 10"), "cpu_max"),
    (dict(name="ok", cpu_weight=0), "cpu_weight"),
    (dict(name="ok", pids_max=-5), "pids_max"),
    (dict(name="ok", cpuset_cpus="0-4095"), "cpuset_cpus"),
    (dict(name="ok", io_max=[{"device": "/dev/nonexistent", "rbps": "1M"}]), "io_max"),
    (dict(name="ok", io_max=[{"device": "/dev/null", "rbps": "1M"}]), "io_max"),
    (dict(name="ok", pids=[4194304 * 2]), "pids"),
    (dict(name="ok", memory_high="10M"), "memory_high"),   # v1 host: no memory.high
    (dict(name="ok", state="absent", pids_max=5), "pids_max"),
]


def test_bad_input_fails_clearly_and_writes_nothing(ansible):
    tasks = []
    for i, (args, dummy) in enumerate(BAD):
        args = dict(args)
        tasks.append(dict(cgroup(args.pop("name"), task="case %d" % i, **dict(where(), **args)),
                          ignore_errors=True))
    run = ansible.tasks(tasks)
    for i, (args, param) in enumerate(BAD):
        result = run.result("case %d" % i)
        assert result.get("failed"), (args, result)
        assert param in result["msg"], (args, param, result["msg"])
        assert result.get("changed") in (None, False)
    assert tree() == {}
    assert not os.path.exists(os.path.join(STATE_DIR, "cgroups"))
