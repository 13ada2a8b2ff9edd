# -*- coding: utf-8 -*-
"""container: validation, capability sets, /proc parsing, config hash and plans."""

from __future__ import annotations

import os
import signal

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import _shim as shim
from ansible_collections.handbuilt.containers.plugins.module_utils import container as ct
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput


def params(tmp_path, **kw):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(exist_ok=True)
    p = dict(name="web", state="started", state_dir=str(tmp_path / "state"), rootfs=str(rootfs),
             command=["sleep", "infinity"], env=None, workdir="/", hostname=None, netns=None,
             cgroup=None, namespaces=None, uid_map=None, gid_map=None, capabilities=None,
             no_new_privileges=True, masked_paths=None, readonly_paths=None,
             readonly_rootfs=False, mounts=None, init=False, init_path=None,
             stop_signal="SIGTERM", stop_timeout=10, restart=True)
    p.update(kw)
    return p


def test_docker_default_capabilities_and_names():
    caps = ct.capabilities("capabilities", None)
    assert ct.cap_names(caps) == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID",
                                  "SETUID", "SETPCAP", "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT",
                                  "MKNOD", "AUDIT_WRITE", "SETFCAP"]
    assert ct.cap_mask(caps) == 0xA80425FB  # what `docker run` shows in CapEff
    assert ct.capabilities("c", ["cap_net_admin", "NET_ADMIN", " sys_admin "]) == [12, 21]
    assert ct.capabilities("c", []) == []
    assert len(ct.capabilities("c", ["ALL"])) == min(len(ct.CAPABILITIES), shim.cap_last_cap() + 1)
    with pytest.raises(InvalidInput) as exc:
        ct.capabilities("capabilities", ["CHOWN", "FLY"])
    assert exc.value.param == "capabilities" and "'FLY'" in str(exc.value)


@pytest.mark.parametrize("data,expected", [
    ("42 (sleep) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123456 1 2 3", ("S", 123456)),
    ("7 (a) b) (c) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", ("Z", 99)),
    ("9 (x y z) R 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", ("R", 5)),
])
def test_parse_stat_reads_after_the_last_parenthesis(data, expected):
    assert ct.parse_stat(data) == expected


def test_proc_stat_of_this_process_matches_the_shim():
    state, start = ct.proc_stat(os.getpid())
    assert state in "RS" and start == shim.proc_starttime(os.getpid())
    assert ct.is_alive(os.getpid(), start)
    assert not ct.is_alive(os.getpid(), start + 1)  # a reused pid is not the container
    assert not ct.is_alive(None, start)


@pytest.mark.parametrize("value,number", [("SIGTERM", 15), ("term", 15), ("9", 9), (2, 2),
                                          ("SIGUSR1", int(signal.SIGUSR1))])
def test_signal_numbers(value, number):
    assert ct.signal_number("stop_signal", value) == number


@pytest.mark.parametrize("value", ["SIGNOPE", 0, 500, "-1"])
def test_bad_signals(value):
    with pytest.raises(InvalidInput):
        ct.signal_number("stop_signal", value)


def test_id_maps():
    assert ct.id_map("uid_map", ["0 100000 65536"]) == "0 100000 65536\n"
    assert ct.id_map("uid_map", [{"container_id": 0, "host_id": 1000, "size": 1},
                                 "1 200000 10"]) == "0 1000 1\n1 200000 10\n"
    for bad in (["0 1"], ["a b c"], ["0 1 0"], []):
        with pytest.raises(InvalidInput):
            ct.id_map("uid_map", bad)


@pytest.mark.parametrize("override,param", [
    (dict(rootfs="/nonexistent/x"), "rootfs"),
    (dict(rootfs="relative/dir"), "rootfs"),
    (dict(rootfs="/"), "rootfs"),
    (dict(command=[]), "command"),
    (dict(command=None), "command"),
    (dict(hostname="h" * 65), "hostname"),
    (dict(hostname="has space"), "hostname"),
    (dict(name="bad/name"), "name"),
    (dict(name="x" * 65), "name"),
    (dict(namespaces=["pid", "uts"]), "namespaces"),
    (dict(namespaces=["pid", "mount", "time"]), "namespaces"),
    (dict(namespaces=["pid", "mount"], hostname="h"), "hostname"),
    (dict(netns="no-such-netns-hbt"), "netns"),
    (dict(netns="a/b"), "netns"),
    (dict(cgroup=["/etc"]), "cgroup"),
    (dict(cgroup=["/sys/fs/cgroup/no-such-cgroup-hbt"]), "cgroup"),
    (dict(cgroup=["no-such-cgroup-hbt/x"]), "cgroup"),
    (dict(cgroup=["../x"]), "cgroup"),
    (dict(capabilities=["NOPE"]), "capabilities"),
    (dict(env={"A=B": "1"}), "env"),
    (dict(workdir="relative"), "workdir"),
    (dict(stop_timeout=-1), "stop_timeout"),
    (dict(uid_map=["0 1000 1"]), "uid_map"),
    (dict(mounts=[{"source": "/nonexistent/hbt", "target": "/x"}]), "mounts[0].source"),
    (dict(mounts=[{"source": "/tmp", "target": "rel"}]), "mounts[0].target"),
    (dict(init=True, init_path="/nonexistent/tini"), "init_path"),
])
def test_bad_input_names_the_parameter(tmp_path, override, param):
    with pytest.raises(InvalidInput) as exc:
        ct.Container(params(tmp_path, **override))
    assert exc.value.param == param
    assert not os.path.exists(tmp_path / "state")


def test_rootfs_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInput, match="not a directory"):
        ct.Container(params(tmp_path, rootfs=str(f)))


def test_check_mode_tolerates_what_an_earlier_task_would_create(tmp_path):
    c = ct.Container(params(tmp_path, rootfs="/nonexistent/merged", netns="later"),
                     check_mode=True)
    assert any("rootfs" in w for w in c.warnings) and any("later" in w for w in c.warnings)


def test_config_defaults_and_hash(tmp_path):
    c = ct.Container(params(tmp_path, env={"B": 2, "A": True}))
    cfg = c.config
    assert cfg["namespaces"] == ["ipc", "mount", "pid", "uts"]
    assert cfg["hostname"] == "web"
    assert cfg["env"]["PATH"] == ct.DEFAULT_PATH and cfg["env"]["HOSTNAME"] == "web"
    assert cfg["env"]["A"] == "true" and cfg["env"]["B"] == "2"
    assert cfg["masked_paths"] == list(shim.MASKED_PATHS)
    assert "/proc/sys" in cfg["readonly_paths"]
    same = ct.Container(params(tmp_path, env={"A": True, "B": 2}, stop_timeout=3))
    assert same.config_hash == c.config_hash  # stop settings never restart a container
    other = ct.Container(params(tmp_path, env={"A": True, "B": 3}))
    assert other.config_hash != c.config_hash


def test_plans(tmp_path):
    c = ct.Container(params(tmp_path))
    current = c.read()
    assert current["record"].status == "absent"
    ops = c.plan(current)
    assert len(ops) == 1 and ops[0].command.startswith("unshare --fork --ipc --mount --pid --uts")
    assert "-- sleep infinity" in ops[0].command
    assert c.predict(c.view(current))["state"] == "running"
    # Nothing recorded: stopped and absent have nothing to do.
    for state in ("stopped", "absent"):
        quiet = ct.Container(params(tmp_path, state=state, rootfs=None, command=None))
        assert quiet.plan(quiet.read()) == []
    # A recorded but dead container: absent removes its state dir, started starts it again.
    cdir = tmp_path / "state" / "containers" / "web"
    cdir.mkdir(parents=True)
    (cdir / "config.json").write_text("{}")
    (cdir / "state.json").write_text('{"pid": 999999999, "starttime": 1}')
    gone = ct.Container(params(tmp_path, state="absent"))
    assert [op.command for op in gone.plan(gone.read())] == ["rm -r %s" % cdir]
    again = c.plan(c.read())
    assert len(again) == 1 and again[0].command.startswith("unshare")


def test_netns_and_cgroup_in_the_hand_command(tmp_path):
    c = ct.Container(params(tmp_path, netns="net1"), check_mode=True)
    assert c.plan(c.read())[0].command.startswith("nsenter --net=/run/netns/net1 unshare")


def test_shim_source_is_the_shim():
    assert "def run(state_dir, report_fd)" in ct.shim_source()
