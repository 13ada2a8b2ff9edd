# -*- coding: utf-8 -*-
from __future__ import annotations

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import validate as v
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import Op, PlanError, apply_plan, render


@pytest.mark.parametrize("name", ["br0", "veth1-br", "x" * 15, "eth0.100", "a_b"])
def test_good_interface_names(name):
    assert v.ifname("name", name) == name


@pytest.mark.parametrize("name,why", [
    ("x" * 16, "at most 15 bytes"), ("é" * 8, "at most 15 bytes"), ("a/b", "'/'"),
    ("a b", "spaces"), ("..", "'..'"), ("a..b", "'..'"), (".", "'.'"), ("", "non-empty"),
    ("a:b", "':'"), (None, "non-empty"),
])
def test_bad_interface_names(name, why):
    with pytest.raises(v.InvalidInput) as err:
        v.ifname("name", name)
    assert why in str(err.value) and str(err.value).startswith("name:")


def test_cidr_requires_prefix_and_valid_address():
    assert str(v.cidr("a", "10.10.0.2/24")) == "10.10.0.2/24"
    assert str(v.cidr("a", "fd00::2/64")) == "fd00::2/64"
    for bad in ("10.10.0.2", "10.10.0.256/24", "10.0.0.1/33", "x/24", 5):
        with pytest.raises(v.InvalidInput):
            v.cidr("a", bad)


def test_duplicate_addresses_rejected():
    with pytest.raises(v.InvalidInput, match="twice"):
        v.cidrs("addresses", ["10.0.0.1/24", "10.0.0.1/24"])


def test_gateway_must_be_inside_a_subnet():
    addrs = v.cidrs("addresses", ["10.10.0.2/24"])
    assert str(v.gateway("gateway", "10.10.0.1", addrs)) == "10.10.0.1"
    with pytest.raises(v.InvalidInput, match="outside every subnet"):
        v.gateway("gateway", "10.20.0.1", addrs)
    with pytest.raises(v.InvalidInput, match="own address"):
        v.gateway("gateway", "10.10.0.2", addrs)
    with pytest.raises(v.InvalidInput, match="not an IP"):
        v.gateway("gateway", "gw", addrs)


@pytest.mark.parametrize("value", [-1, 0, 67, 65536, True, "1500"])
def test_bad_mtu(value):
    with pytest.raises(v.InvalidInput):
        v.mtu("mtu", value)


@pytest.mark.parametrize("text,expected", [
    ("50M", 50 << 20), ("1G", 1 << 30), ("1024", 1024), (4096, 4096), ("max", "max"),
    ("64k", 64 << 10), ("2GiB", 2 << 30), ("10MB", 10 << 20),
])
def test_sizes(text, expected):
    assert v.size("memory_max", text) == expected


@pytest.mark.parametrize("text", ["50X", "-5", -5, "M", "1.5G", "", True])
def test_bad_sizes(text):
    with pytest.raises(v.InvalidInput, match="memory_max"):
        v.size("memory_max", text)


def test_abspath():
    assert v.abspath("p", "/var/lib/x/") == "/var/lib/x"
    for bad in ("rel/path", "/a/../b", None):
        with pytest.raises(v.InvalidInput):
            v.abspath("p", bad)
    with pytest.raises(v.InvalidInput, match="system directory"):
        v.abspath("p", "/usr", forbid=("/", "/usr"))


def test_render_quotes_only_for_display():
    assert render(["ip", "link", "set", "br0", "alias", "handbuilt.containers"]) == \
        "ip link set br0 alias handbuilt.containers"
    assert render(["echo", "50000 100000"]) == "echo '50000 100000'"
    assert render(["x", "it's"]) == "x 'it'\"'\"'s'"


def test_check_mode_runs_nothing_and_failures_name_the_step():
    ran = []
    ops = [Op("step one", ran.append, 1), Op("step two", ran.append, 2)]
    assert apply_plan(ops, check_mode=True) == ["step one", "step two"] and ran == []
    assert apply_plan(ops, check_mode=False) == ["step one", "step two"] and ran == [1, 2]

    def boom():
        raise OSError(16, "Device or resource busy")

    with pytest.raises(PlanError) as err:
        apply_plan([Op("step one", ran.append, 3), Op("step two", boom)], check_mode=False)
    assert "step two failed" in str(err.value) and "step one" in str(err.value)
