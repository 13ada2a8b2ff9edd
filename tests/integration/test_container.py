# -*- coding: utf-8 -*-
"""container, container_exec, container_info and the nsenter connection on the real kernel.

Every container runs a hand-built busybox rootfs (helpers/rootfs.py). The test
process is made a child subreaper, so every process a test starts - the shims
and the containers - stays its descendant; the fixture asserts none is left.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time

import pytest
import yaml
from conftest import sh
from helpers.rootfs import build_rootfs

M = "handbuilt.containers."
STATE = "/run/handbuilt/containers"
PR_SET_CHILD_SUBREAPER = 36
# A PID 1 that leaves on SIGTERM (the kernel drops unhandled signals to a namespace's init).
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
CAPS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
        "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18,
        "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}
_libc = ctypes.CDLL(None, use_errno=True)


# --- processes ---------------------------------------------------------------------
def _stat(pid):
    with open("/proc/%s/stat" % pid) as fh:
        data = fh.read()
    return data[data.rindex(")") + 2:].split()


def descendants(root=None):
    """Live (non-zombie) descendants of this test process: what a test left running."""
    root = root or os.getpid()
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat(entry)
            except OSError:
                continue
            if fields[0] != "Z":
                parent[int(entry)] = int(fields[1])
    found = []
    for pid in parent:
        p = pid
        while p in parent and p != root:
            p = parent[p]
        if p == root and pid != root:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    found.append((pid, fh.read().replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                pass
    return found


def reap():
    while True:
        try:
            pid, dummy = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def alive(pid):
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


@pytest.fixture(autouse=True)
def no_leftover_processes():
    assert _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    left = descendants()
    for pid, dummy in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while descendants() and time.monotonic() < deadline:
        reap()
        time.sleep(0.05)
    reap()
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    assert not left, "processes left behind: %s" % left


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return build_rootfs(str(tmp_path_factory.mktemp("container") / "rootfs"))


def mounts_under(path):
    with open("/proc/self/mountinfo") as fh:
        return [line.split()[4] for line in fh if line.split()[4].startswith(path + "/")
                or line.split()[4] == path]


# --- tasks --------------------------------------------------------------------------
def container(name, rootfs=None, **kw):
    args = dict(name=name)
    if rootfs:
        args.update(rootfs=rootfs, command=LOOP)
    args.update(kw)
    return {"name": "container %s" % name, M + "container": args}


def exec_(name, command, task=None, ignore_errors=False, **kw):
    result = {"name": task or "exec %s" % " ".join(command),
              M + "container_exec": dict(name=name, command=command, **kw)}
    if ignore_errors:
        result["ignore_errors"] = True
    return result


def absent(name):
    return {"name": "absent %s" % name, M + "container": dict(name=name, state="absent", stop_timeout=5)}


def out(play, task):
    result = play.result(task)
    assert not result.get("failed"), result
    return result["stdout"]


# --- tests ----------------------------------------------------------------------------
def test_lifecycle_isolation_and_idempotence(ansible, rootfs, tmp_path):
    # A mount only the host has: it must not be visible inside.
    secret = tmp_path / "host-only"
    secret.mkdir()
    sh("mount", "-t", "tmpfs", "hbt-host-only", str(secret))
    caps = ["CHOWN", "NET_RAW", "KILL", "setuid", "CAP_SETGID"]
    declared = dict(hostname="box-one", workdir="/srv", env={"GREETING": "hello world"},
                    capabilities=caps, stop_timeout=5)
    start = container("c1", rootfs, **declared)
    try:
        # Check mode on an empty sandbox: predicts a start, starts nothing.
        check = ansible.tasks([start], check=True, diff=True)
        assert check.rc == 0 and check.changed == 1, check
        assert check.result("container c1")["diff"]["after"]["state"] == "running"
        assert not os.path.exists(STATE) or os.listdir(STATE) == []
        assert descendants() == []

        first = ansible.tasks([
            start,
            exec_("c1", ["cat", "/proc/1/cmdline"], "pid1"),
            exec_("c1", ["hostname"], "hostname"),
            exec_("c1", ["cat", "/proc/1/status"], "status"),
            exec_("c1", ["cat", "/proc/self/mountinfo"], "mountinfo"),
            exec_("c1", ["ls", "/", "/dev"], "ls"),
            exec_("c1", ["env"], "env"),
            exec_("c1", ["pwd"], "pwd"),
            exec_("c1", ["sh", "-c", "echo 1 > /proc/sys/kernel/hostname"], "ro proc/sys",
                  ignore_errors=True),
            exec_("c1", ["wc", "-c", "/proc/keys", "/proc/timer_list"], "masked"),
            exec_("c1", ["sh", "-c", "echo to-stderr >&2; exit 3"], "rc", ignore_errors=True),
            {"name": "info", M + "container_info": {}},
        ])
        assert first.rc == 0, json.dumps([t for t in first.tasks if t["status"] == "failed"])
        c = first.result("container c1")["container"]
        pid = c["pid"]
        assert c["state"] == "running" and alive(pid)
        # The kernel agrees, read independently of the modules.
        assert os.stat("/proc/%d/ns/pid" % pid).st_ino != os.stat("/proc/self/ns/pid").st_ino
        assert os.stat("/proc/%d/ns/uts" % pid).st_ino != os.stat("/proc/self/ns/uts").st_ino
        assert c["namespaces"]["pid"] == os.stat("/proc/%d/ns/pid" % pid).st_ino
        state = json.load(open(os.path.join(STATE, "c1", "state.json")))
        assert state["pid"] == pid and state["starttime"] == int(_stat(pid)[19])
        # PID 1 inside is the command; hostname is the container's.
        assert out(first, "pid1").split("\0")[:2] == ["sh", "-c"]
        assert out(first, "hostname").strip() == "box-one"
        assert sh("hostname").strip() != "box-one"
        status = dict(line.split(":\t", 1) for line in out(first, "status").splitlines() if ":\t" in line)
        want = sum(1 << CAPS[n] for n in ("CHOWN", "NET_RAW", "KILL", "SETUID", "SETGID"))
        for field in ("CapEff", "CapPrm", "CapBnd", "CapInh"):
            assert int(status[field].strip(), 16) == want, (field, status[field])
        assert int(status["CapAmb"].strip(), 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        # pivot_root: the rootfs is /, no host path or host-only mount is visible.
        mountinfo = out(first, "mountinfo")
        assert "hbt-host-only" not in mountinfo and "/run/netns" not in mountinfo
        points = [line.split()[4] for line in mountinfo.splitlines()]
        assert str(secret) not in mountinfo and "/run" not in points and "/tmp" not in points
        assert points[0] == "/" and mountinfo.split()[3] == rootfs  # the rootfs bind is /
        listing = out(first, "ls")
        assert "linuxrc" in listing and "work" not in listing.split()
        dev = listing.split("/dev:")[1].split()
        for node in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"):
            assert node in dev, dev
        env = out(first, "env")
        assert "GREETING=hello world" in env and "HOSTNAME=box-one" in env
        assert "ANSIBLE" not in env
        assert out(first, "pwd").strip() == "/srv"
        assert first.result("ro proc/sys")["rc"] != 0
        assert [line.split()[0] for line in out(first, "masked").splitlines()] == ["0", "0", "0"]
        rc = first.result("rc")
        assert rc["failed"] and rc["rc"] == 3 and rc["stderr"].strip() == "to-stderr"
        assert first.result("pid1")["changed"] is False
        info = first.result("info")["containers"]
        assert [(i["name"], i["state"], i["pid"]) for i in info] == [("c1", "running", pid)]

        # The same declaration again: ok, same process.
        again = ansible.tasks([start])
        assert again.rc == 0 and again.changed == 0, again
        assert again.result("container c1")["container"]["pid"] == pid
        assert again.result("container c1")["commands"] == []

        # restart: false refuses a different declaration and leaves the container alone.
        changed = container("c1", rootfs, **{**declared, "env": {"GREETING": "bye"}})
        refuse = ansible.tasks([dict(changed, **{M + "container": dict(
            changed[M + "container"], restart=False)})])
        assert refuse.rc != 0
        refused = refuse.result("container c1")
        assert refused["param"] == "restart" and "configuration changed" in refused["msg"]
        # Check mode predicts the restart and changes nothing.
        check = ansible.tasks([changed], check=True)
        assert check.rc == 0 and check.changed == 1 and alive(pid)
        # A changed declaration restarts it.
        restart = ansible.tasks([changed, exec_("c1", ["env"], "env")])
        assert restart.rc == 0 and restart.changed == 1, restart
        new_pid = restart.result("container c1")["container"]["pid"]
        assert new_pid != pid and not alive(pid) and alive(new_pid)
        assert "GREETING=bye" in out(restart, "env")
        assert len(restart.result("container c1")["commands"]) == 2  # kill, start

        # A dead container is started again.
        os.kill(new_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(new_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        revive = ansible.tasks([changed])
        assert revive.rc == 0 and revive.changed == 1, revive
        pid = revive.result("container c1")["container"]["pid"]
        assert pid != new_pid and alive(pid)

        # Stop: SIGTERM is handled by the trap, so no SIGKILL timeout is spent.
        began = time.monotonic()
        stop = ansible.tasks([container("c1", state="stopped", stop_timeout=5),
                              {"name": "info", M + "container_info": {"name": "c1"}}])
        assert stop.rc == 0 and stop.changed == 1, stop
        assert time.monotonic() - began < 15
        assert not alive(pid) and descendants() == []
        info = stop.result("info")["containers"][0]
        assert info["state"] == "exited" and info["exit_code"] == 0 and info["pid"] is None
        assert json.load(open(os.path.join(STATE, "c1", "exit.json")))["exit_code"] == 0
        assert ansible.tasks([container("c1", state="stopped")]).changed == 0

        # absent: no process, no mount, no state directory; again: ok.
        gone = ansible.tasks([absent("c1")])
        assert gone.rc == 0 and gone.changed == 1, gone
        assert not os.path.exists(os.path.join(STATE, "c1"))
        assert mounts_under(str(rootfs)) == []
        assert ansible.tasks([absent("c1")]).changed == 0
    finally:
        sh("umount", str(secret), check=False)


def test_bad_input_fails_naming_the_parameter(ansible, rootfs, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = {
        "rootfs": dict(rootfs="/nonexistent/rootfs"),
        "rootfs ": dict(rootfs=str(a_file)),
        "command": dict(command=[]),
        "netns": dict(netns="no-such-ns"),
        "cgroup": dict(cgroup=["/sys/fs/cgroup/memory/no-such-cgroup-hbt"]),
        "cgroup ": dict(cgroup=["/etc"]),
        "capabilities": dict(capabilities=["CHOWN", "FLY"]),
        "hostname": dict(hostname="h" * 65),
        "name": dict(name="bad/name"),
        "namespaces": dict(namespaces=["pid", "uts"]),
        "stop_signal": dict(stop_signal="SIGNOPE"),
        "env": dict(env={"A=B": "x"}),
    }
    tasks = []
    for i, (param, override) in enumerate(cases.items()):
        args = dict(name="bad%d" % i, rootfs=rootfs, command=LOOP)
        args.update(override)
        tasks.append({"name": "case %d" % i, M + "container": args, "ignore_errors": True})
    # Valid input whose command does not exist in the rootfs: fails at exec, leaves nothing.
    tasks.append({"name": "no such command", M + "container": dict(
        name="nocmd", rootfs=rootfs, command=["/no/such/binary"]), "ignore_errors": True})
    tasks.append({"name": "exec in a missing container", M + "container_exec": dict(
        name="ghost", command=["true"]), "ignore_errors": True})
    play = ansible.tasks(tasks)
    for i, param in enumerate(cases):
        result = play.result("case %d" % i)
        assert result["failed"], (param, result)
        assert result.get("param") == param.strip(), (param, result)
        assert result["msg"].startswith(param.strip() + ":"), result["msg"]
    nocmd = play.result("no such command")
    assert nocmd["failed"] and "/no/such/binary" in nocmd["msg"], nocmd
    ghost = play.result("exec in a missing container")
    assert ghost["failed"] and ghost["param"] == "name"
    assert not os.path.exists(STATE) or os.listdir(STATE) == []
    assert mounts_under(str(rootfs)) == []


def test_two_containers_ping_through_a_bridge(ansible, rootfs):
    network = [
        {"name": "bridge", M + "bridge": dict(name="br0", addresses=["10.10.0.1/24"])},
        {"name": "net1", M + "netns": dict(name="net1")},
        {"name": "net2", M + "netns": dict(name="net2")},
        {"name": "veth1", M + "veth": dict(name="veth1-br", peer="veth1", netns="net1", bridge="br0",
                                           addresses=["10.10.0.2/24"], gateway="10.10.0.1")},
        {"name": "veth2", M + "veth": dict(name="veth2-br", peer="veth2", netns="net2", bridge="br0",
                                           addresses=["10.10.0.3/24"], gateway="10.10.0.1")},
    ]
    containers = [container("a", rootfs, netns="net1", stop_timeout=5),
                  container("b", rootfs, netns="net2", stop_timeout=5)]
    play = ansible.tasks(network + containers + [
        exec_("a", ["ping", "-c", "1", "-W", "2", "10.10.0.3"], "a pings b", timeout=10),
        exec_("b", ["ping", "-c", "1", "-W", "2", "10.10.0.2"], "b pings a", timeout=10),
        exec_("a", ["ip", "-o", "-4", "addr"], "a addr"),
    ])
    assert play.rc == 0, play
    a = play.result("container a")["container"]
    assert a["addresses"] == {"veth1": ["10.10.0.2/24"]}
    assert a["namespaces"]["net"] == os.stat("/run/netns/net1").st_ino
    assert "10.10.0.2/24" in out(play, "a addr")
    assert "1 packets received" in out(play, "a pings b")

    # The namespace is re-created under the same name: the container is restarted into it.
    sh("ip", "netns", "del", "net1")
    sh("ip", "netns", "add", "net1")
    again = ansible.tasks([containers[0]])
    assert again.rc == 0 and again.changed == 1, again
    assert again.result("container a")["container"]["namespaces"]["net"] == \
        os.stat("/run/netns/net1").st_ino
    down = ansible.tasks([absent("a"), absent("b")])
    assert down.rc == 0 and down.changed == 2, down


def _own_memory_cgroup():
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            dummy, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                return "/sys/fs/cgroup/memory" + path
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2
        with open("/proc/self/cgroup") as fh:
            return "/sys/fs/cgroup" + fh.read().strip().split("::", 1)[1]
    pytest.skip("no memory cgroup")


def test_memory_limit_kills_an_allocation(ansible, rootfs):
    base = _own_memory_cgroup()
    cg = os.path.join(base, "hbt-container-test-%d" % os.getpid())
    os.mkdir(cg)
    try:
        v1 = os.path.exists(os.path.join(cg, "memory.limit_in_bytes"))
        limit = 32 << 20
        with open(os.path.join(cg, "memory.limit_in_bytes" if v1 else "memory.max"), "w") as fh:
            fh.write(str(limit))
        swap = os.path.join(cg, "memory.memsw.limit_in_bytes" if v1 else "memory.swap.max")
        if os.path.exists(swap):
            with open(swap, "w") as fh:
                fh.write(str(limit) if v1 else "0")
        play = ansible.tasks([
            container("m", rootfs, cgroup=[cg], stop_timeout=5),
            exec_("m", ["dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=4"], "small"),
            exec_("m", ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"], "big",
                  ignore_errors=True),
            {"name": "info", M + "container_info": {"name": "m"}},
            absent("m"),
        ])
        assert play.rc == 0, play
        pid = play.result("container m")["container"]["pid"]
        assert play.result("small")["rc"] == 0
        big = play.result("big")
        assert big["failed"] and big["rc"] == 128 + signal.SIGKILL, big
        info = play.result("info")["containers"][0]
        key = "memory.limit_in_bytes" if v1 else "memory.max"
        assert info["limits"][cg][key] == str(limit)
        assert info["pid"] == pid
        if v1:
            with open(os.path.join(cg, "memory.oom_control")) as fh:
                oom = dict(line.split() for line in fh)
            assert int(oom.get("oom_kill", "1")) >= 1, oom
        with open(os.path.join(cg, "cgroup.procs")) as fh:
            assert fh.read().split() == []
    finally:
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(cg)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_init_nsenter_connection_and_user_namespace(ansible, rootfs, tmp_path):
    plain = ["sleep", "1000"]
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "localhost": {"ansible_connection": "local"},
        "box": {"ansible_connection": M + "nsenter", "ansible_host": "t"},
    }}}))
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho from-script $(hostname) $(cat /proc/1/comm)\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([
        {"hosts": "localhost", "gather_facts": False, "tasks": [
            container("t", rootfs, command=plain, init=True),
            container("u", rootfs, namespaces=["pid", "mount", "uts", "ipc", "user"],
                      stop_timeout=5),
            exec_("u", ["cat", "/proc/self/uid_map", "/proc/self/gid_map"], "uid_map"),
            exec_("u", ["id", "-u"], "uid"),
        ]},
        {"hosts": "box", "gather_facts": False, "tasks": [
            {"name": "raw", "ansible.builtin.raw": "hostname; cat /proc/1/cmdline; pwd"},
            # script: put_file into the container's tmp, then run it with its /bin/sh.
            {"name": "script", "ansible.builtin.script": str(script)},
        ]},
    ]))
    play = ansible.playbook(str(playbook), inventory=str(inventory))
    try:
        assert play.rc == 0, play.output[-3000:]
        raw = play.result("raw")
        assert not raw.get("failed"), play
        lines = raw["stdout"].splitlines()
        assert lines[0] == "t"
        assert lines[1].split("\0")[:3] == ["/dev/init", "--", "sleep"]
        assert play.result("script")["stdout"].strip() == "from-script t init"
        uid_map = out(play, "uid_map").split()
        assert uid_map[:3] == ["0", "100000", "65536"]
        assert out(play, "uid").strip() == "0"
        u = play.result("container u")["container"]
        assert os.stat("/proc/%d/ns/user" % u["pid"]).st_ino != os.stat("/proc/self/ns/user").st_ino
        with open("/proc/%d/status" % u["pid"]) as fh:
            assert [line.split()[1] for line in fh if line.startswith("Uid:")] == ["100000"]
        t_pid = play.result("container t")["container"]["pid"]
        # put_file / fetch_file through /proc/<pid>/root, straight through the plugin.
        conn = nsenter_connection("t")
        local = tmp_path / "local.txt"
        local.write_text("hello from the host\n")
        conn.put_file(str(local), "/tmp/put.txt")
        with open("/proc/%d/root/tmp/put.txt" % t_pid) as fh:
            assert fh.read() == "hello from the host\n"
        conn.fetch_file("/etc/hostname", str(tmp_path / "fetched"))
        assert (tmp_path / "fetched").read_text() == "handbuilt\n"
        rc, stdout, dummy = conn.exec_command("cat /tmp/put.txt; echo $$")
        assert rc == 0 and stdout.splitlines()[0] == b"hello from the host"
        # tini forwards SIGTERM to sleep: stopping does not wait for the SIGKILL timeout.
        began = time.monotonic()
        down = ansible.tasks([absent("t"), absent("u")])
        assert down.rc == 0 and down.changed == 2, down
        assert time.monotonic() - began < 8
        assert not alive(t_pid)
    finally:
        ansible.tasks([absent("t"), absent("u")])


def _plugin():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "nsenter_plugin", os.path.join(os.path.dirname(__file__), "..", "..", "plugins",
                                       "connection", "nsenter.py"))
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def nsenter_connection(name):
    from ansible.playbook.play_context import PlayContext
    conn = _plugin().Connection(PlayContext(), None)
    # Loaded outside Ansible's plugin loader: its options are set directly.
    conn._options = {"remote_addr": name, "state_dir": "/run/handbuilt", "nsenter_path": "nsenter",
                     "executable": "/bin/sh"}
    return conn._connect()


def test_nsenter_file_transfer_stays_inside_the_root(tmp_path):
    """resolve_in_root: an absolute symlink in the container never leads to a host path."""
    plugin = _plugin()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "tmp").mkdir()
    os.symlink("/etc", root / "tmp" / "escape")
    os.symlink("../../../../etc/passwd", root / "tmp" / "up")
    r = str(root)
    assert plugin.resolve_in_root(r, "/tmp/escape/passwd") == r + "/etc/passwd"
    assert plugin.resolve_in_root(r, "/tmp/up") == r + "/etc/passwd"
    assert plugin.resolve_in_root(r, "/../../etc/shadow") == r + "/etc/shadow"
