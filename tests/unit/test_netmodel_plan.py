# -*- coding: utf-8 -*-
"""Plan computation of the network models from given states (pure logic).

The kernel state is handed to ``plan()`` as data; behaviour against the real
kernel is proven by tests/integration/test_network.py.
"""

from __future__ import annotations

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import netmodel
from ansible_collections.handbuilt.containers.plugins.module_utils.netlink import OWNER_MARK
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import PlanError


class NoKernel:
    """A Netlink stand-in for planning only: every lookup finds nothing."""

    def ipr(self, netns=None):
        return self

    def link(self, *args, **kwargs):
        return []

    def ns_exists(self, name):
        return True

    def ns_path(self, name):
        return "/run/netns/" + name


def link(name, index, kind="veth", alias=OWNER_MARK, up=True, master=None, peer=None,
         addresses=(), mtu=1500):
    return {"name": name, "index": netmodel.LazyIndex(None, name, index), "kind": kind,
            "alias": alias, "mtu": mtu, "up": up, "operstate": "UP", "master_index": master,
            "peer_index": peer, "addresses": list(addresses)}


def veth(**kw):
    args = dict(name="veth3-br", peer="veth3", netns="net3", addresses=["10.10.0.4/24"],
                gateway="10.10.0.1")
    args.update(kw)
    return netmodel.Veth(NoKernel(), **args)


def current(host=None, peer=None, where="netns", stray=None, routes=("10.10.0.1",)):
    return {"host": host, "peer": peer, "peer_where": where if peer else None, "stray": stray,
            "master": None, "routes": list(routes), "ns_missing": False}


def commands(ops):
    return [op.command for op in ops]


def test_dangling_cable_plan_is_the_seeds_fix():
    model = veth()
    state = current(host=link("veth3-br", 5, alias=None, up=False, peer=2),
                    peer=link("veth3", 2, alias=None, peer=5, addresses=["10.10.0.4/24"]))
    bridge = {"name": "br0", "kind": "bridge", "index": netmodel.LazyIndex(None, "br0", 3)}
    model.depends = lambda ipr, param, name, kind=None: bridge
    model.bridge = "br0"
    assert commands(model.plan(state)) == [
        "ip link set veth3-br alias handbuilt.containers",
        "ip link set veth3-br master br0",
        "ip link set veth3-br up",
        "ip netns exec net3 ip link set veth3 alias handbuilt.containers",
    ]
    assert model.adopted


def test_converged_pair_plans_nothing():
    state = current(host=link("veth3-br", 5, peer=2),
                    peer=link("veth3", 2, peer=5, addresses=["10.10.0.4/24"]))
    assert veth().plan(state) == []


def test_wrong_and_extra_addresses_and_route():
    state = current(host=link("veth3-br", 5, peer=2),
                    peer=link("veth3", 2, peer=5, addresses=["10.10.0.9/24", "10.10.0.4/24"]),
                    routes=["10.10.0.254"])
    assert commands(veth().plan(state)) == [
        "ip netns exec net3 ip addr del 10.10.0.9/24 dev veth3",
        "ip netns exec net3 ip route replace default via 10.10.0.1",
    ]


def test_peer_left_in_host_namespace_is_moved():
    state = current(host=link("veth3-br", 5, peer=6), peer=link("veth3", 6, peer=5), where="host",
                    routes=())
    plan = commands(veth().plan(state))
    assert plan[0] == "ip link set veth3 netns net3"
    assert "ip netns exec net3 ip addr add 10.10.0.4/24 broadcast + dev veth3" in plan
    assert plan[-1] == "ip netns exec net3 ip route replace default via 10.10.0.1"


def test_missing_pair_is_created_with_peer_in_namespace():
    plan = commands(veth().plan(current(routes=())))
    assert plan[0] == "ip link add veth3-br type veth peer name veth3 netns net3"


def test_foreign_interface_with_the_peer_name_is_refused():
    stray = link("veth3", 7, kind="dummy", alias=None)
    with pytest.raises(PlanError, match="force"):
        veth().plan(current(stray=stray))
    assert commands(veth(force=True).plan(current(stray=stray, routes=())))[0] == \
        "ip netns exec net3 ip link del veth3"


def test_absent_refuses_unmarked_and_ignores_missing():
    state = current(host=link("veth3-br", 5, alias=None, peer=2))
    with pytest.raises(PlanError, match="not created by handbuilt.containers"):
        veth(state="absent").plan(state)
    assert commands(veth(state="absent", force=True).plan(state)) == ["ip link del veth3-br"]
    assert veth(state="absent").plan(current()) == []


def test_host_end_of_another_kind_is_an_error():
    with pytest.raises(PlanError, match="not a veth"):
        veth().plan(current(host=link("veth3-br", 5, kind="bridge")))


def test_bridge_plan_from_nothing_and_predicted_view():
    model = netmodel.Bridge(NoKernel(), "br0", addresses=["10.10.0.1/24"], mtu=1400)
    assert commands(model.plan(None)) == [
        "ip link add br0 type bridge",
        "ip link set br0 alias handbuilt.containers",
        "ip link set br0 mtu 1400",
        "ip link set br0 up",
        "ip addr add 10.10.0.1/24 broadcast + dev br0",
    ]
    after = model.predict(model.view(None))
    assert after == {"state": "present", "name": "br0", "kind": "bridge", "owned": True,
                     "up": True, "mtu": 1400, "addresses": ["10.10.0.1/24"]}
