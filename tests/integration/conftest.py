# -*- coding: utf-8 -*-
"""Integration tests: real kernel, inside the private sandbox of tests/sandbox.sh.

Every test starts from an empty sandbox (only lo, no namespaces, no state) and
drives the modules through ansible-playbook, the way users run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV_PYTHON = sys.executable
STATE_DIR = "/run/handbuilt"  # a tmpfs of the sandbox (tests/sandbox.sh mounts one on /run)
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-pyroute2 (0.7.x)
# Module interpreters under test: Debian's pyroute2 0.7 and PyPI's 0.9 from the venv.
INTERPRETERS = {"pyroute2-debian": SYSTEM_PYTHON, "pyroute2-pypi": VENV_PYTHON}


def pytest_configure(config):
    if os.environ.get("HANDBUILT_SANDBOX") != "1":
        pytest.exit("integration tests must run inside tests/sandbox.sh (use `make integration`)",
                    returncode=2)


def sh(*argv, check=True, netns=None):
    """Run a hand command (argv list) in the sandbox; returns stdout."""
    argv = list(argv)
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), proc.returncode, proc.stderr))
    return proc.stdout if check else proc


def ping(address, netns=None, attempts=3):
    """True once a ping gets an answer. Several attempts because a port just added to a
    bridge forwards only after the kernel's linkwatch reports its carrier (batched, up to
    1 s later): one lost first packet is the kernel's timing, not a broken topology."""
    for dummy in range(attempts):
        proc = sh("ping", "-c", "1", "-W", "1", "-q", address, netns=netns, check=False)
        if proc.returncode == 0:
            return True
    return False


def snapshot():
    """What the collection may touch on a host, for before/after comparisons."""
    def run(*argv):
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        # IPv6 link-local addresses and routes appear a moment after a link
        # comes up (autoconf), so they are left out of the comparison.
        lines = [re.sub(r"\s*fe80::\S+", "", line) for line in out.splitlines()
                 if "fe80::/64" not in line and "ff00::/8" not in line and "local fe80::" not in line]
        return "\n".join(lines)

    state = {
        "links": run("ip", "-d", "-br", "link"),
        "addrs": run("ip", "-br", "addr"),
        "routes": run("ip", "route", "show", "table", "all"),
        "netns": sorted(os.listdir("/run/netns")),
        "state_dir": sorted(os.listdir(STATE_DIR)) if os.path.isdir(STATE_DIR) else [],
        "mounts": sorted(l.split()[4] for l in open("/proc/self/mountinfo")
                         if "/run/netns/" in l.split()[4]),
    }
    if shutil.which("nft"):
        state["nft"] = run("nft", "-s", "list", "ruleset")  # -s: no counters, they move with traffic
    return state


def kill_containers(base="/run/handbuilt/containers"):
    """SIGKILL every container process and shim a test left behind (pid + start time checked)."""
    for name in os.listdir(base) if os.path.isdir(base) else []:
        try:
            with open(os.path.join(base, name, "state.json")) as fh:
                state = json.load(fh)
        except (OSError, ValueError):
            continue
        for pid_key, start_key in (("pid", "starttime"), ("shim_pid", "shim_starttime")):
            try:
                pid = int(state[pid_key])
                with open("/proc/%d/stat" % pid) as fh:
                    data = fh.read()
                if int(data[data.rindex(")") + 2:].split()[19]) == state[start_key]:
                    os.kill(pid, signal.SIGKILL)
                    for dummy in range(50):  # gone, or a zombie waiting for its parent
                        with open("/proc/%d/stat" % pid) as fh:
                            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                                break
                        time.sleep(0.05)
            except (OSError, KeyError, TypeError, ValueError):
                pass


def is_mountpoint(path):
    return any(line.split()[4] == path for line in open("/proc/self/mountinfo"))


def remove_netns_file(path):
    """Unmount (every stacked mount) and remove a namespace file, retrying while
    killed container processes still hold it."""
    for dummy in range(50):
        while is_mountpoint(path):
            if subprocess.run(["umount", "-l", path], capture_output=True, check=False).returncode:
                break
        try:
            os.unlink(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("cannot remove %s" % path)


def reset_sandbox():
    kill_containers()
    for name in os.listdir("/run/netns"):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        remove_netns_file("/run/netns/" + name)
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        name = line.split(": ")[1].split("@")[0]
        if name != "lo":
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
    if shutil.which("nft"):
        subprocess.run(["nft", "flush", "ruleset"], capture_output=True, check=False)
    if os.path.exists("/proc/net/ip_tables_names") and shutil.which("iptables-legacy"):
        for table in open("/proc/net/ip_tables_names").read().split():
            for action in (["-F"], ["-X"]):
                subprocess.run(["iptables-legacy", "-t", table] + action, capture_output=True, check=False)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as fh:
        fh.write("0\n")
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    os.makedirs(STATE_DIR)


EMPTY = None


@pytest.fixture(autouse=True)
def sandbox():
    """An empty sandbox before each test; left empty after it."""
    global EMPTY
    reset_sandbox()
    if EMPTY is None:
        EMPTY = snapshot()
    assert snapshot() == EMPTY, "sandbox not empty at test start"
    yield
    reset_sandbox()


class PlayResult:
    def __init__(self, proc, records):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.tasks = [r for r in records if r["kind"] == "task"]
        stats = [r for r in records if r["kind"] == "stats"]
        self.stats = stats[-1]["hosts"].get("localhost", {}) if stats else {}

    @property
    def changed(self):
        return self.stats.get("changed", 0)

    @property
    def failed(self):
        return self.stats.get("failures", 0) + self.stats.get("unreachable", 0)

    def result(self, name):
        """The result of the (last) task called ``name`` (in a role: "role : name")."""
        found = [t["result"] for t in self.tasks
                 if t["task"] == name or t["task"].endswith(" : " + name)]
        assert found, "no task named %r in %s" % (name, [t["task"] for t in self.tasks])
        return found[-1]

    def __repr__(self):
        return "PlayResult(rc=%s, stats=%s)\n%s" % (self.rc, self.stats, self.output[-6000:])


class Ansible:
    def __init__(self, python):
        self.python = python

    def playbook(self, path, check=False, diff=False, extra_vars=None, inventory=None, netns=None,
                 env=None, verbosity=0):
        """Run a playbook; with ``netns``, inside that namespace (a second "host")."""
        record = tempfile.NamedTemporaryFile(prefix="record-", suffix=".jsonl", delete=False)
        record.close()
        env = dict(os.environ,
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
                   ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="record",
                   ANSIBLE_NOCOLOR="1",
                   HANDBUILT_RECORD=record.name) | (env or {})  # a test's env wins
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), path,
                "-e", "ansible_python_interpreter=%s" % self.python]
        if inventory:
            argv += ["-i", inventory]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbosity:
            argv.append("-" + "v" * verbosity)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
        with open(record.name) as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        os.unlink(record.name)
        return PlayResult(proc, records)

    def tasks(self, tasks, **kwargs):
        """Run a list of tasks (Python data) as a one-play playbook on localhost."""
        play = [{"name": "test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
            yaml.safe_dump(play, fh)
        try:
            return self.playbook(fh.name, **kwargs)
        finally:
            os.unlink(fh.name)


@pytest.fixture(params=sorted(INTERPRETERS))
def ansible_both(request):
    """Runs the test once per pyroute2 flavour (Debian 0.7 and PyPI 0.9)."""
    return Ansible(INTERPRETERS[request.param])


@pytest.fixture
def ansible():
    return Ansible(SYSTEM_PYTHON)
