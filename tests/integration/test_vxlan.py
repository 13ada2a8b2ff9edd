# -*- coding: utf-8 -*-
"""vxlan: two "hosts" (network namespaces joined by an underlay veth) share one L2 segment."""

from __future__ import annotations

from conftest import ping, sh, snapshot

import conftest

M = "handbuilt.containers."


def host(name, underlay, index):
    """A host namespace with br0, one container namespace and an underlay address."""
    sh("ip", "netns", "add", name)
    sh("ip", "netns", "add", name + "-c")
    sh("ip", "link", "set", underlay, "netns", name)
    for argv in (["ip", "addr", "add", "10.99.0.1%d/24" % index, "dev", underlay],
                 ["ip", "link", "set", underlay, "up"], ["ip", "link", "set", "lo", "up"],
                 ["ip", "link", "add", "br0", "type", "bridge"],
                 ["ip", "link", "set", "br0", "up"],
                 ["ip", "link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns", name + "-c"],
                 ["ip", "link", "set", "c0", "master", "br0"], ["ip", "link", "set", "c0", "up"]):
        sh(*argv, netns=name)
    for argv in (["ip", "addr", "add", "10.10.0.%d/24" % (index + 1), "dev", "eth0"],
                 ["ip", "link", "set", "eth0", "up"]):
        sh(*argv, netns=name + "-c")


def vxlan_task(index, **kw):
    args = dict(name="hbvx0", vni=42, local="10.99.0.1%d" % index, dev="u%d" % index,
                remotes=["10.99.0.1%d" % (3 - index)], bridge="br0", mtu=1450)
    args.update(kw)
    return {"name": "vxlan", M + "vxlan": args}


def test_two_hosts_share_a_segment(ansible):
    sh("ip", "link", "add", "u1", "type", "veth", "peer", "name", "u2")
    host("h1", "u1", 1)
    host("h2", "u2", 2)
    assert not ping("10.10.0.3", netns="h1-c")
    for index in (1, 2):
        first = ansible.tasks([vxlan_task(index)], netns="h%d" % index)
        assert first.rc == 0, first
        assert first.result("vxlan")["commands"][0] == (
            "ip link add hbvx0 type vxlan id 42 local 10.99.0.1%d dstport 4789 dev u%d" % (index, index))
        again = ansible.tasks([vxlan_task(index)], netns="h%d" % index)
        assert again.rc == 0 and again.changed == 0, again
    assert ping("10.10.0.3", netns="h1-c") and ping("10.10.0.2", netns="h2-c")
    detail = sh("ip", "-d", "link", "show", "hbvx0", netns="h1")
    assert "vxlan id 42" in detail and "mtu 1450" in detail and "master br0" in detail
    assert "dst 10.99.0.12" in sh("bridge", "fdb", "show", "dev", "hbvx0", netns="h1")
    # A changed VNI re-creates the device; a removed remote goes from the FDB.
    changed = ansible.tasks([vxlan_task(1, vni=43, remotes=[])], netns="h1")
    assert changed.rc == 0, changed
    assert "vxlan id 43" in sh("ip", "-d", "link", "show", "hbvx0", netns="h1")
    assert "10.99.0.12" not in sh("bridge", "fdb", "show", "dev", "hbvx0", netns="h1")
    down = ansible.tasks([{"name": "vxlan", M + "vxlan": {"name": "hbvx0", "state": "absent"}}], netns="h1")
    assert down.rc == 0 and down.changed == 1
    assert "hbvx0" not in sh("ip", "-br", "link", netns="h1")


def test_bad_input_changes_nothing(ansible):
    before = snapshot()
    cases = [
        (dict(name="hbvx0", vni=0, local="10.99.0.11"), "vni"),
        (dict(name="hbvx0", vni=1 << 24, local="10.99.0.11"), "vni"),
        (dict(name="hbvx0", vni=42, local="nonsense"), "local"),
        (dict(name="hbvx0", vni=42, local="10.99.0.11", remotes=["10.99.0.11"]), "remotes"),
        (dict(name="hbvx0", vni=42, local="10.99.0.11", remotes=["x"]), "remotes"),
        (dict(name="hbvx0", vni=42, local="10.99.0.11", port=0), "port"),
        (dict(name="hbvx0", vni=42, local="10.99.0.11", mtu=20), "mtu"),
        (dict(name="hbvx0", vni=42, local="10.99.0.11", bridge="nosuchbr"), "bridge"),
        (dict(name="hbvx0", vni=42, local="10.99.0.11", dev="nosuchdev"), "dev"),
        (dict(name="a-very-long-vxlan-name", vni=42, local="10.99.0.11"), "name"),
        (dict(name="lo", vni=42, local="10.99.0.11"), "name"),
    ]
    run = ansible.tasks([{"name": "case %d" % i, M + "vxlan": args, "ignore_errors": True}
                         for i, (args, dummy) in enumerate(cases)])
    for i, (args, param) in enumerate(cases):
        result = run.result("case %d" % i)
        assert result["failed"] and param in result["msg"], (args, result)
    assert snapshot() == before == conftest.EMPTY
