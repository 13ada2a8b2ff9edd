# -*- coding: utf-8 -*-
"""cgroup input validation and the v1 <-> v2 conversions (pure logic)."""

from __future__ import annotations

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import cgroup as cg
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput


@pytest.mark.parametrize("value,expected", [
    ("50M", 52428800), ("1G", 1 << 30), ("512k", 512 << 10), (4096, 4096), ("4096", 4096),
    ("max", "max"), ("10MiB", 10 << 20), (0, 0),
])
def test_sizes(value, expected):
    assert cg.check_memory("memory_max", value) == expected


@pytest.mark.parametrize("value", ["50X", "-1", -5, "1.5G", 1.5, True, "", "M", "max 1"])
def test_bad_sizes(value):
    with pytest.raises(InvalidInput) as exc:
        cg.check_memory("memory_max", value)
    assert exc.value.param == "memory_max"


def test_page_rounding():
    assert cg.page_round(52428800 + 100, 4096) == 52428800
    assert cg.page_round("max", 4096) == "max"


@pytest.mark.parametrize("value,expected", [
    (0.5, (50000, 100000)), ("1.5", (150000, 100000)), (4, (400000, 100000)), (0.01, (1000, 100000)),
])
def test_cpus(value, expected):
    assert cg.check_cpus("cpus", value, 4) == expected


@pytest.mark.parametrize("value,why", [
    (0, "greater than 0"), (-1, "greater than 0"), (5, "more than this host's 4"),
    ("half", "not a number"), (True, "not a number"), (0.001, "minimum"),
])
def test_bad_cpus(value, why):
    with pytest.raises(InvalidInput, match=why):
        cg.check_cpus("cpus", value, 4)


@pytest.mark.parametrize("value,expected", [
    ("50000 100000", (50000, 100000)), ("max", ("max", None)), ("max 50000", ("max", 50000)),
    ("200000 100000", (200000, 100000)), ("1000 1000", (1000, 1000)),
])
def test_cpu_max(value, expected):
    assert cg.check_cpu_max("cpu_max", value, 4) == expected


@pytest.mark.parametrize("value,why", [
    ("50000", "no period"), (50000, "no period"), ("50000 100", "outside the kernel's range"),
    ("50000 2000000", "outside the kernel's range"), ("500 100000", "outside the kernel's range"),
    ("500000 100000", "more than this host's 4"), ("a b", "not a number"), ("1 2 3", "QUOTA PERIOD"),
    (True, "QUOTA PERIOD"), ("", "QUOTA PERIOD"),
])
def test_bad_cpu_max(value, why):
    with pytest.raises(InvalidInput, match=why):
        cg.check_cpu_max("cpu_max", value, 4)


@pytest.mark.parametrize("value", [0, 10001, -3, "x", 1.5, True])
def test_bad_cpu_weight(value):
    with pytest.raises(InvalidInput):
        cg.check_cpu_weight("cpu_weight", value)


@pytest.mark.parametrize("value,expected", [(5, 5), ("5", 5), ("max", "max"), (0, 0)])
def test_pids_max(value, expected):
    assert cg.check_pids_max("pids_max", value) == expected


@pytest.mark.parametrize("value", [-1, "five", 5000000, True, "5M"])
def test_bad_pids_max(value):
    with pytest.raises(InvalidInput):
        cg.check_pids_max("pids_max", value)


def test_cpuset_lists():
    assert cg.check_idlist("cpuset_cpus", "0-1,3", {0, 1, 2, 3}, "CPUs") == {0, 1, 3}
    assert cg.format_idlist({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert cg.parse_idlist("0-2,5") == {0, 1, 2, 5}
    for bad, why in (("7", "not on this host"), ("a", "not a list"), ("", "at least one"),
                     ("3-1", "not a list"), ("0-", "not a list")):
        with pytest.raises(InvalidInput, match=why):
            cg.check_idlist("cpuset_cpus", bad, {0, 1, 2, 3}, "CPUs")


@pytest.mark.parametrize("path", ["web", "web/app", "my-app.1", "a_b", "x" * 255])
def test_good_cgroup_paths(path):
    assert cg.cgroup_path("name", path) == path


@pytest.mark.parametrize("path,why", [
    ("../x", "'..'"), ("a/../b", "'..'"), ("/abs", "leading '/'"), ("a//b", "empty"), ("a/", "empty"),
    (".hidden", "start with '.'"), ("memory.max", "interface file"), ("cgroup.procs", "interface file"),
    ("tasks", "interface file"), ("with space", "spaces"), ("tab\tx", "spaces"), ("", "empty"),
    ("x" * 256, "255"), (5, "string"),
])
def test_bad_cgroup_paths(path, why):
    with pytest.raises(InvalidInput, match=why):
        cg.cgroup_path("name", path)


def test_parent_may_be_empty():
    assert cg.cgroup_path("parent", "", allow_empty=True) == ""


def test_weight_and_shares_round_trip_exactly():
    assert cg.weight_to_shares(1) == 2
    assert cg.weight_to_shares(10000) == 262144
    assert all(cg.shares_to_weight(cg.weight_to_shares(w)) == w for w in range(1, 10001))
    assert cg.shares_to_weight(1024) == 40   # v1's default, in v2 terms
    assert cg.shares_to_weight(1) == 1 and cg.shares_to_weight(10 ** 6) == 10000


def test_memsw_to_swap():
    assert cg.memsw_to_swap(100, 150) == 50
    assert cg.memsw_to_swap(100, "max") == "max"
    assert cg.memsw_to_swap("max", "max") == "max"
    assert cg.memsw_to_swap(100, None) is None


def test_one_table_maps_every_limit_to_v1_and_v2_files():
    assert cg.LIMITS["memory_max"] == ("memory", "memory.max", "memory.limit_in_bytes")
    assert cg.LIMITS["memory_swap_max"][2] == "memory.memsw.limit_in_bytes"
    assert cg.LIMITS["cpu_weight"][1:] == ("cpu.weight", "cpu.shares")
    assert cg.LIMITS["memory_high"][2] is None  # v2 only
    assert cg.V1_NAMES["io"] == ("blkio",)


HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
DEBIAN12 = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""
COMOUNTED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 /sub /mnt/bind rw,relatime - cgroup cgroup rw,memory
34 31 0:31 / /sys/fs/cgroup/with\\040space rw,relatime - cgroup cgroup rw,pids
"""


def test_parse_mountinfo_hybrid():
    v2, v1 = cg.parse_mountinfo(HYBRID)
    assert v2.mount == "/sys/fs/cgroup/unified" and v2.version == 2
    assert sorted(v1) == ["cpu", "cpuacct", "memory", "pids"]  # name=systemd is no controller
    assert v1["memory"].mount == "/sys/fs/cgroup/memory"


def test_parse_mountinfo_pure_v2():
    v2, v1 = cg.parse_mountinfo(DEBIAN12)
    assert v2.mount == "/sys/fs/cgroup" and v1 == {}


def test_parse_mountinfo_comounted_bind_and_escapes():
    v2, v1 = cg.parse_mountinfo(COMOUNTED)
    assert v2 is None
    assert v1["cpu"] is v1["cpuacct"] and v1["cpu"].mount == "/sys/fs/cgroup/cpu,cpuacct"
    assert "memory" not in v1  # a bind mount of a sub-cgroup is not a hierarchy root
    assert v1["pids"].mount == "/sys/fs/cgroup/with space"
