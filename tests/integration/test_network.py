# -*- coding: utf-8 -*-
"""netns, bridge and veth on the real kernel: the seed's labs Q3-Q7."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import ping, sh, snapshot

import conftest

sys.path.insert(0, os.path.join(conftest.REPO, ".collections"))
from ansible_collections.handbuilt.containers.plugins.module_utils import netlink  # noqa: E402

M = "handbuilt.containers."


def bridge(name="br0", **kw):
    return {"name": "bridge %s" % name, M + "bridge": dict(name=name, addresses=["10.10.0.1/24"], **kw)}


def netns(name, **kw):
    return {"name": "netns %s" % name, M + "netns": dict(name=name, **kw)}


def veth(n, **kw):
    args = dict(name="veth%d-br" % n, peer="veth%d" % n, netns="net%d" % n, bridge="br0",
                addresses=["10.10.0.%d/24" % (n + 1)], gateway="10.10.0.1")
    args.update(kw)
    return {"name": "veth%d" % n, M + "veth": args}


def absent(task):
    module = [k for k in task if k.startswith(M)][0]
    args = {"name": task[module]["name"], "state": "absent"}
    return {"name": task["name"] + " absent", module: args}


TOPOLOGY = [bridge(), netns("net1"), veth(1), netns("net2"), veth(2)]
TEARDOWN = [absent(t) for t in reversed(TOPOLOGY)]


def assert_topology_works():
    assert ping("10.10.0.1", netns="net1"), "net1 cannot reach its gateway"
    assert ping("10.10.0.1", netns="net2"), "net2 cannot reach its gateway"
    assert ping("10.10.0.3", netns="net1"), "net1 cannot reach net2"
    assert ping("10.10.0.2", netns="net2"), "net2 cannot reach net1"
    assert ping("10.10.0.2"), "the host cannot reach net1 through br0"


def test_seed_topology_build_rerun_teardown(ansible_both):
    first = ansible_both.tasks(TOPOLOGY)
    assert first.rc == 0, first
    assert_topology_works()
    # The kernel agrees with the declaration, read independently of the modules.
    assert "master br0" in sh("ip", "link", "show", "veth1-br")
    assert "10.10.0.2/24" in sh("ip", "-br", "addr", "show", "veth1", netns="net1")
    assert "default via 10.10.0.1" in sh("ip", "route", netns="net2")
    assert "UP" in sh("ip", "-br", "link", "show", "lo", netns="net1")
    assert "alias handbuilt.containers" in sh("ip", "link", "show", "veth2-br")
    assert "net1" in sh("ip", "netns", "list")
    commands = first.result("veth1")["commands"]
    assert commands[0] == "ip link add veth1-br type veth peer name veth1 netns net1"
    assert "ip link set veth1-br master br0" in commands
    assert "ip netns exec net1 ip route replace default via 10.10.0.1" in commands
    assert first.result("netns net1")["path"] == "/run/netns/net1"

    second = ansible_both.tasks(TOPOLOGY)
    assert second.rc == 0 and second.changed == 0, second
    assert all(t["result"]["commands"] == [] for t in second.tasks)
    assert second.result("bridge br0")["bridge"]["ports"] == ["veth1-br", "veth2-br"]

    down = ansible_both.tasks(TEARDOWN)
    assert down.rc == 0 and down.changed == len(TEARDOWN), down
    assert snapshot() == conftest.EMPTY
    again = ansible_both.tasks(TEARDOWN)
    assert again.rc == 0 and again.changed == 0, again


def test_check_mode_on_empty_sandbox_changes_nothing(ansible):
    check = ansible.tasks(TOPOLOGY, check=True, diff=True)
    assert check.rc == 0, check
    assert check.changed == len(TOPOLOGY)
    assert snapshot() == conftest.EMPTY
    predicted = check.result("veth1")
    assert predicted["diff"]["before"] == {"state": "absent"}
    assert predicted["diff"]["after"]["bridge"] == "br0"
    assert predicted["diff"]["after"]["addresses"] == ["10.10.0.2/24"]
    assert any("does not exist" in w for w in predicted.get("warnings", []))
    # What check mode predicted is what the real run does.
    real = ansible.tasks(TOPOLOGY, diff=True)
    assert real.rc == 0, real
    for task in TOPOLOGY:
        assert real.result(task["name"])["commands"] == check.result(task["name"])["commands"]
        after = real.result(task["name"])["diff"]["after"]
        for key, value in check.result(task["name"])["diff"]["after"].items():
            assert after.get(key) == value, (task["name"], key, after)
    # Check mode on the converged sandbox: nothing to do.
    assert ansible.tasks(TOPOLOGY, check=True).changed == 0


def test_check_mode_predicts_teardown(ansible):
    assert ansible.tasks(TOPOLOGY).rc == 0
    before = snapshot()
    check = ansible.tasks(TEARDOWN, check=True)
    assert check.rc == 0 and check.changed == len(TEARDOWN), check
    assert snapshot() == before


def seed_q7_by_hand():
    """The seed's lab Q7 setup, pasted as is: the host end dangles."""
    for argv in (["ip", "netns", "add", "net3"],
                 ["ip", "link", "add", "veth3", "type", "veth", "peer", "name", "veth3-br"],
                 ["ip", "link", "set", "veth3", "netns", "net3"]):
        sh(*argv)
    for argv in (["ip", "link", "set", "lo", "up"],
                 ["ip", "addr", "add", "10.10.0.4/24", "dev", "veth3"],
                 ["ip", "link", "set", "veth3", "up"],
                 ["ip", "route", "add", "default", "via", "10.10.0.1"]):
        sh(*argv, netns="net3")


def test_dangling_cable_is_converged_and_adopted(ansible):
    assert ansible.tasks([bridge()]).rc == 0
    seed_q7_by_hand()
    assert not ping("10.10.0.1", netns="net3")
    fix = ansible.tasks([netns("net3"), veth(3, addresses=["10.10.0.4/24"])], diff=True)
    assert fix.rc == 0, fix
    result = fix.result("veth3")
    assert result["commands"] == [
        "ip link set veth3-br alias handbuilt.containers",
        "ip link set veth3-br master br0",
        "ip link set veth3-br up",
        "ip netns exec net3 ip link set veth3 alias handbuilt.containers",
    ]
    assert result["adopted"] is True
    assert any("adopted" in w for w in result["warnings"])
    assert fix.result("netns net3")["adopted"] is True
    assert result["diff"]["before"]["bridge"] is None and result["diff"]["after"]["bridge"] == "br0"
    assert ping("10.10.0.1", netns="net3")
    again = ansible.tasks([netns("net3"), veth(3, addresses=["10.10.0.4/24"])])
    assert again.rc == 0 and again.changed == 0, again


def test_half_built_states_converge_in_one_run(ansible):
    assert ansible.tasks(TOPOLOGY).rc == 0
    # net1: wrong + extra address, route gone, host end down, lo down.
    sh("ip", "addr", "flush", "dev", "veth1", netns="net1")
    sh("ip", "addr", "add", "10.10.0.99/24", "dev", "veth1", netns="net1")
    sh("ip", "addr", "add", "192.168.5.5/24", "dev", "veth1", netns="net1")
    sh("ip", "link", "set", "lo", "down", netns="net1")
    sh("ip", "link", "set", "veth1-br", "down")
    sh("ip", "link", "set", "veth1-br", "nomaster")
    # net2: the peer end pulled back into the host namespace (addresses lost).
    # (netns <pid of this test>: the sandbox's namespace, never the real host's PID 1)
    sh("ip", "link", "set", "veth2", "netns", str(os.getpid()), netns="net2")
    assert not ping("10.10.0.1", netns="net1")
    fix = ansible.tasks(TOPOLOGY)
    assert fix.rc == 0, fix
    assert "ip link set veth2 netns net2" in fix.result("veth2")["commands"]
    assert "ip netns exec net1 ip addr del 192.168.5.5/24 dev veth1" in fix.result("veth1")["commands"]
    assert_topology_works()
    assert sh("ip", "-br", "-4", "addr", "show", "veth1", netns="net1").split()[2:] == ["10.10.0.2/24"]
    assert ansible.tasks(TOPOLOGY).changed == 0


def test_peer_in_wrong_namespace_is_rebuilt(ansible):
    assert ansible.tasks(TOPOLOGY).rc == 0
    # Declare veth1 inside net2 instead: the pair is moved to where it belongs.
    moved = ansible.tasks([veth(1, netns="net2")])
    assert moved.rc == 0, moved
    assert "veth1" in sh("ip", "-br", "link", netns="net2")
    assert "veth1" not in sh("ip", "-br", "link", netns="net1")
    assert ping("10.10.0.1", netns="net2")
    assert ansible.tasks([veth(1, netns="net2")]).changed == 0


def test_mtu_and_bridge_addresses_converge(ansible):
    assert ansible.tasks(TOPOLOGY).rc == 0
    sh("ip", "addr", "add", "10.20.0.1/24", "dev", "br0")
    run = ansible.tasks([bridge(mtu=1400), veth(1, mtu=1400)])
    assert run.rc == 0, run
    assert "mtu 1400" in sh("ip", "link", "show", "br0")
    assert "10.20.0.1" not in sh("ip", "addr", "show", "br0")
    assert "mtu 1400" in sh("ip", "link", "show", "veth1", netns="net1")
    assert ansible.tasks([bridge(mtu=1400), veth(1, mtu=1400)]).changed == 0


def test_hairpin_on_the_bridge_port(ansible):
    assert ansible.tasks(TOPOLOGY).rc == 0
    run = ansible.tasks([veth(1, hairpin=True)])
    assert run.rc == 0, run
    assert run.result("veth1")["commands"] == ["ip link set veth1-br type bridge_slave hairpin on"]
    assert "hairpin on" in sh("ip", "-d", "link", "show", "veth1-br")
    assert ansible.tasks([veth(1, hairpin=True)]).changed == 0
    assert "hairpin off" in sh("ip", "-d", "link", "show", "veth2-br")


def test_absent_refuses_what_the_collection_did_not_create(ansible):
    sh("ip", "link", "add", "br9", "type", "bridge")
    sh("ip", "netns", "add", "handmade")
    sh("ip", "link", "add", "hand0", "type", "veth", "peer", "name", "hand1")
    before = snapshot()
    refused = ansible.tasks([
        {"name": "b", M + "bridge": {"name": "br9", "state": "absent"}, "ignore_errors": True},
        {"name": "n", M + "netns": {"name": "handmade", "state": "absent"}, "ignore_errors": True},
        {"name": "v", M + "veth": {"name": "hand0", "state": "absent"}, "ignore_errors": True},
    ])
    for name in "bnv":
        assert refused.result(name)["failed"], refused
        assert "not created by handbuilt.containers" in refused.result(name)["msg"]
    assert snapshot() == before
    forced = ansible.tasks([
        {"name": "b", M + "bridge": {"name": "br9", "state": "absent", "force": True}},
        {"name": "n", M + "netns": {"name": "handmade", "state": "absent", "force": True}},
        {"name": "v", M + "veth": {"name": "hand0", "state": "absent", "force": True}},
    ])
    assert forced.rc == 0 and forced.changed == 3, forced
    assert snapshot() == conftest.EMPTY


def test_nothing_unnamed_is_touched(ansible):
    sh("ip", "link", "add", "other0", "type", "bridge")
    sh("ip", "netns", "add", "otherns")
    sh("ip", "link", "add", "oth0", "type", "veth", "peer", "name", "oth1", "netns", "otherns")
    before_links = sh("ip", "-d", "link", "show", "other0") + sh("ip", "-d", "link", "show", "oth0")
    assert ansible.tasks(TOPOLOGY).rc == 0
    assert ansible.tasks(TEARDOWN).rc == 0
    after_links = sh("ip", "-d", "link", "show", "other0") + sh("ip", "-d", "link", "show", "oth0")
    assert before_links == after_links
    assert "otherns" in sh("ip", "netns", "list")


BAD_BRIDGE = [
    (dict(name="a-very-long-bridge-name"), "name"),
    (dict(name="br/0"), "name"),
    (dict(name="br 0"), "name"),
    (dict(name=".."), "name"),
    (dict(name="br0", addresses=["10.10.0.1"]), "addresses"),
    (dict(name="br0", addresses=["10.10.0.300/24"]), "addresses"),
    (dict(name="br0", addresses=["nonsense"]), "addresses"),
    (dict(name="br0", addresses=["10.10.0.1/33"]), "addresses"),
    (dict(name="br0", mtu=-1), "mtu"),
    (dict(name="br0", mtu=10000000), "mtu"),
    (dict(name="br0", mtu=20), "mtu"),
    (dict(name="lo"), "name"),  # exists and is not a bridge
]
BAD_NETNS = [
    (dict(name="a/b"), "name"),
    (dict(name=".."), "name"),
    (dict(name="x..y"), "name"),
    (dict(name="with space"), "name"),
    (dict(name=""), "name"),
    (dict(name="x" * 65), "name"),
    (dict(name="tab\tname"), "name"),
    (dict(name="."), "name"),
    (dict(name="net1", state="gone"), "state"),
    (dict(name="net1", loopback="maybe"), "loopback"),
]
BAD_VETH = [
    (dict(name="veth-name-too-long", peer="v1"), "name"),
    (dict(name="v1-br", peer="p/1"), "peer"),
    (dict(name="v1-br", peer="v1-br"), "peer"),
    (dict(name="v1-br", peer="v1", netns="net1", addresses=["10.10.0.2"]), "addresses"),
    (dict(name="v1-br", peer="v1", netns="net1", addresses=["10.10.0.2/24"], gateway="10.20.0.1"), "gateway"),
    (dict(name="v1-br", peer="v1", netns="net1", addresses=["10.10.0.2/24"], gateway="bogus"), "gateway"),
    (dict(name="v1-br", peer="v1", addresses=["10.10.0.2/24"], gateway="10.10.0.1"), "gateway"),
    (dict(name="v1-br", peer="v1", netns="nosuchns"), "netns"),
    (dict(name="v1-br", peer="v1", bridge="nosuchbr"), "bridge"),
    (dict(name="v1-br", peer="v1", mtu=-5), "mtu"),
    (dict(name="v1-br", peer="v1", mtu=70000), "mtu"),
    (dict(name="v1-br", peer="v1", bridge="lo"), "bridge"),  # not a bridge
    (dict(name="lo", peer="v1"), "name"),  # host end exists and is not a veth
    (dict(name="v1-br"), "peer"),  # state present needs a peer
]


@pytest.mark.parametrize("module,cases", [("bridge", BAD_BRIDGE), ("netns", BAD_NETNS),
                                          ("veth", BAD_VETH)])
def test_bad_input_fails_clearly_and_changes_nothing(ansible, module, cases):
    before = snapshot()
    tasks = [{"name": "case %d" % i, M + module: args, "ignore_errors": True}
             for i, (args, dummy) in enumerate(cases)]
    run = ansible.tasks(tasks)
    for i, (args, param) in enumerate(cases):
        result = run.result("case %d" % i)
        assert result.get("failed"), (args, result)
        assert param in result["msg"], (args, param, result["msg"])
        assert result.get("changed") in (None, False)
    assert snapshot() == before


def test_only_a_mounted_namespace_counts_as_one():
    """A plain file where a namespace would be (what a failed `ip netns add` leaves) is not one."""
    nl = netlink.Netlink()
    sh("ip", "netns", "add", "real")
    open("/run/netns/plain", "w").close()
    try:
        assert nl.ns_exists("real")
        assert not nl.ns_exists("plain") and not nl.ns_exists("missing")
    finally:
        nl.close()
        os.unlink("/run/netns/plain")
        sh("ip", "netns", "del", "real")
    assert not nl.ns_exists("real")
