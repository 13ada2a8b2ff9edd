# -*- coding: utf-8 -*-
"""The cgroup model against fake cgroupfs trees (v2 like Debian 12, v1 like this machine).

Plans are computed, applied through the fake kernel, re-read: the second plan
must be empty and the real result must equal what check mode predicted.
"""

from __future__ import annotations

import os

import pytest
from test_cgroup_fakefs import v1_host, v2_host

from ansible_collections.handbuilt.containers.plugins.module_utils import cgroup as cg
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import PlanError
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput


def converge(host, name="web", **kw):
    """check mode, then the real run, then a re-run; returns the real result."""
    before = host.files()
    check = host.cgroup(name, **kw).converge(check_mode=True)
    assert host.files() == before, "check mode wrote something"
    real = host.cgroup(name, **kw).converge(check_mode=False)
    assert real["commands"] == check["commands"]
    assert real["diff"]["after"] == check["diff"]["after"]
    again = host.cgroup(name, **kw).converge(check_mode=False)
    assert again["changed"] is False and again["commands"] == [], again["commands"]
    return real


# --- cgroup v2 -------------------------------------------------------------------
def test_v2_new_cgroup_plan_is_the_hand_commands(tmp_path):
    host = v2_host(tmp_path)
    root = host.path("sys/fs/cgroup")
    result = converge(host, memory_max="50M", pids_max=5)
    marker = host.state_dir + "/cgroups" + root + "/handbuilt/web/.owner"
    assert result["commands"] == [
        "echo '+cpu +memory +pids' > %s/cgroup.subtree_control" % root,
        "mkdir %s/handbuilt" % root,
        "stat -c %%i %s/handbuilt > %s" % (root, marker.replace("/web/.owner", "/.owner")),
        "echo '+cpu +memory +pids' > %s/handbuilt/cgroup.subtree_control" % root,
        "mkdir %s/handbuilt/web" % root,
        "stat -c %%i %s/handbuilt/web > %s" % (root, marker),
        "echo 52428800 > %s/handbuilt/web/memory.max" % root,
        "echo 5 > %s/handbuilt/web/pids.max" % root,
    ]
    assert open(root + "/handbuilt/web/memory.max").read().strip() == "52428800"
    assert result["diff"]["before"] == {"state": "absent"}
    limits = result["cgroup"]["limits"]
    assert limits["memory_max"] == 52428800 and limits["pids_max"] == 5
    assert limits["cpu_max"] == "max 100000" and limits["cpu_weight"] == 100
    assert result["cgroup"]["version"] == 2 and result["cgroup"]["path"] == root + "/handbuilt/web"
    assert result["cgroup"]["stats"]["memory"]["oom_kill"] == 0


def test_v2_change_limits_and_max_removes(tmp_path):
    host = v2_host(tmp_path)
    converge(host, memory_max="50M", memory_high="40M", cpus=0.5, cpu_weight=200)
    d = host.path("sys/fs/cgroup/handbuilt/web")
    result = converge(host, memory_max="max", cpu_max="max", memory_swap_max="1G")
    assert result["commands"] == ["echo max > %s/cpu.max" % d, "echo max > %s/memory.max" % d,
                                  "echo 1073741824 > %s/memory.swap.max" % d]
    assert result["diff"]["before"]["limits"]["memory_max"] == 52428800
    assert result["diff"]["after"]["limits"]["memory_max"] == "max"
    assert result["cgroup"]["limits"]["memory_high"] == 41943040   # not given: untouched
    assert result["cgroup"]["limits"]["cpu_weight"] == 200


def test_v2_existing_parent_enables_only_missing_controllers(tmp_path):
    host = v2_host(tmp_path, subtree=("cpu", "memory"))
    root = host.path("sys/fs/cgroup")
    result = converge(host, parent="", cpuset_cpus="1", io_max=[{"device": "8:0", "wbps": "10M"}])
    assert result["commands"][0] == "echo '+cpuset +io +pids' > %s/cgroup.subtree_control" % root
    assert "echo 1 > %s/web/cpuset.cpus" % root in result["commands"]
    assert "echo '8:0 wbps=10485760' > %s/web/io.max" % root in result["commands"]
    assert result["cgroup"]["limits"]["io_max"] == {
        "8:0": {"rbps": "max", "wbps": 10485760, "riops": "max", "wiops": "max"}}
    # Removing the last io limit of a device removes its line.
    converge(host, parent="", io_max=[{"device": "8:0", "wbps": "max"}])
    assert open(root + "/web/io.max").read().strip() == ""


def test_v2_controller_missing_is_a_clear_error(tmp_path):
    host = v2_host(tmp_path, controllers=("cpu", "memory"))
    with pytest.raises(PlanError, match="pids_max: needs the pids controller.*offers: cpu memory"):
        host.cgroup(pids_max=5).converge(check_mode=True)
    # Not needed by a limit: the cgroup simply does without it.
    result = converge(host, memory_max="1G")
    assert result["cgroup"]["controllers"] == ["cpu", "memory"]


def test_v2_not_delegated_and_no_internal_processes(tmp_path):
    host = v2_host(tmp_path, subtree=("cpu", "memory"))
    root = host.path("sys/fs/cgroup")
    host.fs.hand_mkdir(root + "/user.slice")
    host.fs.write(root + "/user.slice/cgroup.subtree_control", "+memory")
    host.fs.hand_mkdir(root + "/user.slice/session-1.scope", procs=[4242])
    host.process(4242, ["0::/user.slice/session-1.scope"])
    before = host.files()
    with pytest.raises(PlanError, match="pids_max: the pids controller is not delegated to .*session-1"):
        host.cgroup(relative_to_pid=4242, pids_max=5).converge(check_mode=False)
    with pytest.raises(PlanError, match="no internal processes"):
        host.cgroup(relative_to_pid=4242, memory_max="1G").converge(check_mode=False)
    assert host.files() == before


def test_v2_anchor_with_processes_gets_a_plain_subtree(tmp_path):
    """Without limits, v2 allows children beneath a cgroup holding processes (no controllers)."""
    host = v2_host(tmp_path, subtree=("cpu", "memory", "pids"))
    root = host.path("sys/fs/cgroup")
    host.fs.hand_mkdir(root + "/app.service", procs=[77])
    host.process(77, ["0::/app.service"])
    result = converge(host, parent="box", relative_to_pid=77)
    assert [c for c in result["commands"] if not c.startswith("stat")] == [
        "mkdir %s/app.service/box" % root, "mkdir %s/app.service/box/web" % root]
    assert result["cgroup"]["controllers"] == []


def test_v2_pids_are_attached_once(tmp_path):
    host = v2_host(tmp_path)
    host.process(100, ["0::/"])
    root = host.path("sys/fs/cgroup")
    result = host.cgroup(pids=[100, "100"]).converge(check_mode=False)
    assert result["commands"][-1] == "echo 100 > %s/handbuilt/web/cgroup.procs" % root
    assert sum("cgroup.procs" in c for c in result["commands"]) == 1
    assert result["cgroup"]["pids"] == [100]
    host.process(100, ["0::/handbuilt/web"])   # the kernel moved it
    assert host.cgroup(pids=[100]).converge(check_mode=False)["commands"] == []


def test_v2_memory_high_works_but_not_on_v1(tmp_path):
    host = v1_host(tmp_path)
    with pytest.raises(PlanError, match="memory_high: cgroup v1 has no equivalent"):
        host.cgroup(memory_high="10M").converge(check_mode=True)


# --- cgroup v1 -------------------------------------------------------------------
def test_v1_new_cgroup_in_each_hierarchy(tmp_path):
    host = v1_host(tmp_path)
    base = host.path("sys/fs/cgroup")
    result = converge(host, memory_max="50M", memory_swap_max=0, cpu_max="50000 100000",
                      cpu_weight=100, pids_max=5)
    cmds = result["commands"]
    for ctrl in ("cpu", "cpuacct", "memory", "pids"):
        assert "mkdir %s/%s/handbuilt/web" % (base, ctrl) in cmds
    assert not any("/cpuset/" in c or "/blkio/" in c or "/unified/" in c for c in cmds)
    assert "echo 50000 > %s/cpu/handbuilt/web/cpu.cfs_quota_us" % base in cmds
    assert "echo 2597 > %s/cpu/handbuilt/web/cpu.shares" % base in cmds
    mem = [c for c in cmds if "memory.limit" in c or "memsw" in c]
    # limit <= memory+swap at each step: lowering from unlimited writes the limit first
    assert mem == ["echo 52428800 > %s/memory/handbuilt/web/memory.limit_in_bytes" % base,
                   "echo 52428800 > %s/memory/handbuilt/web/memory.memsw.limit_in_bytes" % base]
    limits = result["cgroup"]["limits"]
    assert limits == {"memory_max": 52428800, "memory_swap_max": 0, "cpu_max": "50000 100000",
                      "cpus": 0.5, "cpu_weight": 100, "pids_max": 5}
    assert result["cgroup"]["version"] == 1
    assert result["cgroup"]["paths"]["cpuacct"] == base + "/cpuacct/handbuilt/web"
    assert set(result["cgroup"]["stats"]) == {"memory", "pids", "cpu"}


def test_v1_raising_memory_writes_memsw_first_and_keeps_swap(tmp_path):
    host = v1_host(tmp_path)
    converge(host, memory_max="50M", memory_swap_max="10M")
    d = host.path("sys/fs/cgroup/memory/handbuilt/web")
    result = converge(host, memory_max="100M")
    assert result["commands"] == ["echo 115343360 > %s/memory.memsw.limit_in_bytes" % d,
                                  "echo 104857600 > %s/memory.limit_in_bytes" % d]
    assert result["cgroup"]["limits"]["memory_swap_max"] == 10 << 20
    result = converge(host, memory_max="max")
    assert result["cgroup"]["limits"]["memory_max"] == "max"
    assert result["cgroup"]["limits"]["memory_swap_max"] == "max"


def test_v1_cpuset_copies_parent_and_blkio(tmp_path):
    host = v1_host(tmp_path)
    base = host.path("sys/fs/cgroup")
    result = converge(host, cpuset_cpus="1-2", io_max=[{"device": "8:0", "rbps": "1M", "wiops": 100}])
    cmds = result["commands"]
    assert cmds[cmds.index("mkdir %s/cpuset/handbuilt" % base) + 1:][:2] == [
        "echo 0-3 > %s/cpuset/handbuilt/cpuset.cpus" % base,
        "echo 0 > %s/cpuset/handbuilt/cpuset.mems" % base]
    assert "echo 1-2 > %s/cpuset/handbuilt/web/cpuset.cpus" % base in cmds
    assert "echo '8:0 1048576' > %s/blkio/handbuilt/web/blkio.throttle.read_bps_device" % base in cmds
    assert "echo '8:0 100' > %s/blkio/handbuilt/web/blkio.throttle.write_iops_device" % base in cmds
    assert result["cgroup"]["limits"]["cpuset_cpus"] == "1-2"
    assert result["cgroup"]["limits"]["cpuset_mems"] == "0"
    result = converge(host, io_max=[{"device": "8:0", "rbps": "max"}])
    assert result["commands"] == ["echo '8:0 0' > %s/blkio/handbuilt/web/blkio.throttle.read_bps_device"
                                  % base]


def test_v1_relative_to_pid_nests_per_hierarchy(tmp_path):
    host = v1_host(tmp_path, memory_anchor="/process_api/abc")
    base = host.path("sys/fs/cgroup")
    host.process(55, ["4:memory:/process_api/abc", "1:cpu:/", "2:cpuacct:/", "8:pids:/",
                      "3:cpuset:/", "7:blkio:/", "0::/"])
    result = converge(host, parent="hbtest", relative_to_pid=55, pids_max=3)
    paths = result["cgroup"]["paths"]
    assert paths["memory"] == base + "/memory/process_api/abc/hbtest/web"
    assert paths["pids"] == base + "/pids/hbtest/web"
    result = host.cgroup(parent="hbtest", relative_to_pid=55, pids=[55]).converge(check_mode=False)
    attach = [c for c in result["commands"] if "cgroup.procs" in c]
    assert len(attach) == 4   # cpu, cpuacct, memory, pids: not cpuset or blkio (not needed)


def test_absent_removes_children_then_owned_parent(tmp_path):
    host = v1_host(tmp_path)
    before = host.files()
    converge(host, "web", pids_max=5)
    converge(host, "db", memory_max="1G")
    converge(host, "web/app", pids_max=2)
    result = converge(host, "web", state="absent")
    base = host.path("sys/fs/cgroup")
    cmds = result["commands"]
    assert cmds.index("rmdir %s/pids/handbuilt/web/app" % base) < cmds.index(
        "rmdir %s/pids/handbuilt/web" % base)
    assert "rmdir %s/pids/handbuilt" % base not in cmds   # db is still there
    last = converge(host, "db", state="absent")
    assert "rmdir %s/memory/handbuilt" % base in last["commands"]
    assert host.files() == before   # nothing left: no directories, no markers
    assert not os.path.exists(host.state_dir + "/cgroups")


def test_absent_with_processes_needs_kill(tmp_path):
    host = v2_host(tmp_path)
    converge(host, pids_max=5)
    d = host.path("sys/fs/cgroup/handbuilt/web")
    host.fs._put(d, {"cgroup.procs": "999999"})
    before = host.files()
    with pytest.raises(PlanError, match="name: cgroup web still holds processes 999999; set kill: true"):
        host.cgroup(state="absent").converge(check_mode=True)
    check = host.cgroup(state="absent", kill=True).converge(check_mode=True)
    assert check["commands"][0] == "echo 1 > %s/cgroup.kill" % d
    assert host.files() == before


def test_foreign_cgroup_is_refused_unless_force(tmp_path):
    host = v2_host(tmp_path, subtree=("cpu", "memory", "pids"))
    root = host.path("sys/fs/cgroup")
    host.fs.hand_mkdir(root + "/handbuilt")
    host.fs.write(root + "/handbuilt/cgroup.subtree_control", "+cpu +memory +pids")
    host.fs.hand_mkdir(root + "/handbuilt/web")
    before = host.files()
    for state in ("present", "absent"):
        with pytest.raises(PlanError, match="name: cgroup .*/handbuilt/web exists but was not created"):
            host.cgroup(state=state, pids_max=5 if state == "present" else None).converge(False)
    assert host.files() == before
    resource = host.cgroup(force=True, pids_max=5)
    adopted = resource.converge(check_mode=False)
    assert adopted["adopted"] is True and any("adopted" in w for w in resource.warnings)
    assert host.cgroup().converge(check_mode=True)["commands"] == []
    gone = host.cgroup(state="absent").converge(check_mode=False)   # now ours
    assert gone["changed"] and not os.path.exists(root + "/handbuilt/web")
    assert os.path.isdir(root + "/handbuilt")   # the parent was not ours: it stays


def test_recreated_cgroup_is_not_ours(tmp_path):
    host = v2_host(tmp_path)
    converge(host, pids_max=5)
    d = host.path("sys/fs/cgroup/handbuilt/web")
    # Deleted by hand and made again: same name, another inode than the marker holds.
    marker = host.state_dir + "/cgroups" + d + "/.owner"
    with open(marker, "w") as fh:
        fh.write("%d\n" % (os.stat(d).st_ino + 1))
    with pytest.raises(PlanError, match="not created by handbuilt"):
        host.cgroup(state="absent").converge(check_mode=True)


def test_bad_input_raises_before_reading(tmp_path):
    host = v2_host(tmp_path)
    host.process(12, ["0::/"], state="Z")
    cases = [
        (dict(name="../x"), "name"), (dict(name="/abs"), "name"), (dict(parent="a/../b"), "parent"),
        (dict(memory_max="50X"), "memory_max"), (dict(memory_max=-1), "memory_max"),
        (dict(cpus=0), "cpus"), (dict(cpus=64), "cpus"), (dict(cpu_max="50000"), "cpu_max"),
        (dict(cpu_max="50000 10"), "cpu_max"), (dict(cpus=0.5, cpu_max="max"), "cpus"),
        (dict(cpuset_cpus="9"), "cpuset_cpus"), (dict(io_max=[{"device": "7:7", "rbps": 1}]), "io_max"),
        (dict(io_max=[{"device": "8:1", "rbps": 1}]), "io_max"),
        (dict(io_max=[{"device": "/nonexistent", "rbps": 1}]), "io_max"),
        (dict(io_max=[{"device": "8:0", "rbps": "fast"}]), "io_max"),
        (dict(io_max=[{"device": "8:0"}]), "io_max"), (dict(pids=[999999]), "pids"),
        (dict(pids=[12]), "pids"), (dict(relative_to_pid=999999), "relative_to_pid"),
        (dict(state="absent", memory_max="1G"), "memory_max"), (dict(kill=True), "kill"),
        (dict(cpu_weight=0), "cpu_weight"), (dict(pids_max=-2), "pids_max"),
    ]
    name = "web"
    for kw, param in cases:
        kw = dict(kw)
        with pytest.raises(InvalidInput) as exc:
            host.cgroup(kw.pop("name", name), **kw)
        assert exc.value.param == param, (kw, exc.value)


def test_info_lists_every_cgroup_beneath_the_parent(tmp_path):
    host = v1_host(tmp_path)
    converge(host, "web", pids_max=5)
    converge(host, "web/app", memory_max="10M")
    host.fs.hand_mkdir(host.path("sys/fs/cgroup/pids/handbuilt/stray"))
    info = cg.CgroupInfo(host.layout(), state_dir=host.state_dir)
    result = info.converge(check_mode=True)
    assert result["changed"] is False
    assert [c["name"] for c in result["cgroups"]] == ["stray", "web", "web/app"]
    owned = {c["name"]: c["owned"] for c in result["cgroups"]}
    assert owned == {"stray": False, "web": True, "web/app": True}
    one = cg.CgroupInfo(host.layout(), name="web/app", state_dir=host.state_dir).converge(True)
    assert one["cgroup"]["limits"]["memory_max"] == 10 << 20
    none = cg.CgroupInfo(host.layout(), name="nope", state_dir=host.state_dir).converge(True)
    assert none["cgroup"] is None and none["cgroups"] == []
