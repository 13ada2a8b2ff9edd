# -*- coding: utf-8 -*-
"""The link cache's bookkeeping (pure logic): which calls one dump answers, and that the
first write ends it. That compose converges correctly with it is proven against the kernel
(tests/integration/test_playbooks.py, the re-run that repairs broken containers)."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import netlink


class Msg(dict):
    def __init__(self, index, name):
        super().__init__(index=index)
        self.name = name

    def get_attr(self, attr):
        return self.name if attr == "IFLA_IFNAME" else None


class CountingSocket:
    """Stands in for pyroute2's IPRoute: counts what reaches the kernel."""

    def __init__(self):
        self.calls = []
        self.links = [Msg(1, "lo"), Msg(7, "hb-a")]

    def get_links(self, *args, **kwargs):
        self.calls.append("dump")
        return list(self.links)

    def link(self, command, **kwargs):
        self.calls.append((command, kwargs))
        return [l for l in self.links if kwargs.get("ifname") in (None, l.name)
                and kwargs.get("index") in (None, l["index"])]

    def close(self):
        pass


@pytest.fixture
def nl(monkeypatch):
    sock = CountingSocket()
    monkeypatch.setattr(netlink, "IPRoute", lambda: sock)
    nl = netlink.Netlink()
    return nl, sock


def test_without_caching_every_lookup_asks_the_kernel(nl):
    nl, sock = nl
    assert netlink.find_link(nl.ipr(), "hb-a")["index"] == 7
    assert netlink.find_link(nl.ipr(), "hb-a")["index"] == 7
    assert sock.calls == [("get", {"ifname": "hb-a"})] * 2


def test_one_dump_answers_names_indexes_and_misses(nl):
    nl, sock = nl
    nl.cache_links()
    ipr = nl.ipr()
    assert netlink.find_link(ipr, "hb-a")["index"] == 7
    assert netlink.link_name(ipr, 1) == "lo"
    assert netlink.find_link(ipr, "hb-zz") is None          # ENODEV, as the kernel says
    assert [l.name for l in ipr.get_links()] == ["lo", "hb-a"]
    assert sock.calls == ["dump"]


def test_the_first_write_ends_caching_for_the_run(nl):
    nl, sock = nl
    nl.cache_links()
    ipr = nl.ipr()
    netlink.find_link(ipr, "hb-a")
    ipr.link("set", index=7, state="up")
    sock.links.append(Msg(8, "hb-b"))
    assert netlink.find_link(ipr, "hb-b")["index"] == 8
    assert sock.calls == ["dump", ("set", {"index": 7, "state": "up"}), ("get", {"ifname": "hb-b"})]
    assert not nl.caching


def test_stop_caching_drops_every_dump(nl):
    nl, sock = nl
    nl.cache_links()
    netlink.find_link(nl.ipr(), "hb-a")
    nl.stop_caching()
    nl.cache_links()  # a new pass dumps again
    netlink.find_link(nl.ipr(), "hb-a")
    assert sock.calls == ["dump", "dump"]


def test_a_miss_raises_what_the_kernel_raises(nl):
    nl, dummy = nl
    nl.cache_links()
    with pytest.raises(netlink.NetlinkError) as exc:
        nl.ipr().link("get", ifname="nope")
    assert exc.value.code == errno.ENODEV


class Slot:
    """Like pyroute2's nla_slot: [0] is the name, [1] decodes the value (counted)."""

    decoded = []

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __getitem__(self, key):
        if key == 1:
            Slot.decoded.append(self.name)
            return self.value
        return self.name


def test_attributes_read_in_one_pass_first_wins_and_decode_only_what_is_asked():
    Slot.decoded = []
    msg = {"attrs": [Slot("IFLA_IFNAME", "hb-a"), Slot("IFLA_STATS64", object()),
                     Slot("IFLA_MTU", 1500), Slot("IFLA_MTU", 9000)]}
    assert netlink.attributes(msg, "IFLA_MTU", "IFLA_IFALIAS", "IFLA_IFNAME") == [1500, None, "hb-a"]
    assert sorted(Slot.decoded) == ["IFLA_IFNAME", "IFLA_MTU"]
