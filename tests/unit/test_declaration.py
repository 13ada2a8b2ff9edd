# -*- coding: utf-8 -*-
"""The stack declaration check compose runs on the host and the roles run on the controller."""
from __future__ import annotations

import pytest

from ansible_collections.handbuilt.containers.plugins.filter.declaration_errors import declaration_errors
from ansible_collections.handbuilt.containers.plugins.module_utils import declaration as d
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput

NET = {"bridge": "br0", "subnet": "10.10.0.0/24", "gateway": "10.10.0.1"}


def test_a_good_declaration_has_no_errors():
    containers = [
        {"name": "web", "address": "10.10.0.2", "command": ["httpd"], "memory": "64M", "cpus": 0.5,
         "pids": 64, "ports": [{"host": 8080, "container": 80},
                               {"host": 8080, "container": 80, "protocol": "udp"}]},
        {"name": "client", "ports": [{"host": 8081, "container": 80, "host_address": "127.0.0.1"}]},
        {"name": "db", "pids": "32", "cpus": "1.5"},  # as Ansible's argument spec would convert
    ]
    assert d.errors(NET, containers, [{"name": "busybox"}, {"name": "debian"}]) == []
    assert d.errors(NET, []) == []


@pytest.mark.parametrize("containers,message", [
    ([{"name": "a"}, {"name": "a"}], "containers[1].name: 'a' is declared twice"),
    ([{"name": "much-too-long"}], "longer than 12 bytes"),
    ([{"name": "a/b"}], "'/'"),
    ([{"name": "a", "veth": "x" * 16}], "containers[0].veth"),
    ([{"name": "a", "veth": "br0"}], "the bridge"),
    ([{"name": "a", "veth": "v"}, {"name": "b", "veth": "v"}], "also the name of a"),
    ([{"name": "a", "address": "10.10.1.2"}], "not a host address of the subnet"),
    ([{"name": "a", "address": "10.10.0.255"}], "not a host address"),
    ([{"name": "a", "address": "10.10.0.1"}], "gateway's address"),
    ([{"name": "a", "address": "nope"}], "not an IP address"),
    ([{"name": "a", "address": "10.10.0.5"}, {"name": "b", "address": "10.10.0.5/24"}],
     "10.10.0.5 is also the address of a"),
    ([{"name": "a", "command": []}], "non-empty argv list"),
    ([{"name": "a", "command": "sleep 1"}], "non-empty argv list"),
    ([{"name": "a", "memory": "50X"}], "containers[0].memory: '50X' is not a size"),
    ([{"name": "a", "cpus": 0}], "above 0"),
    ([{"name": "a", "cpus": True}], "above 0"),
    ([{"name": "a", "pids": 0}], "at least 1"),
    ([{"name": "a", "pids": "6.5"}], "whole number"),
    ([{"name": "a", "ports": [{"host": 80}]}], "needs host and container"),
    ([{"name": "a", "ports": [{"host": 70000, "container": 80}]}], "ports[0].host: 70000"),
    ([{"name": "a", "ports": [{"host": 80, "container": 0}]}], "ports[0].container"),
    ([{"name": "a", "ports": [{"host": 80, "container": 80, "protocol": "sctp"}]}], "tcp or udp"),
    ([{"name": "a", "ports": [{"host": 80, "container": 80}]},
      {"name": "b", "ports": [{"host": "80", "container": 81}]}], "tcp port 80 is also published by a"),
    (["web"], "containers[0]: must be a dict"),
])
def test_bad_containers_are_named_with_their_place(containers, message):
    errors = d.errors(NET, containers)
    assert len(errors) == 1 and message in errors[0], errors


@pytest.mark.parametrize("network,message", [
    (dict(NET, bridge="x" * 16), "bridge:"),
    (dict(NET, subnet="10.10.0.1/24"), "subnet:"),
    (dict(NET, gateway="10.20.0.1"), "outside the subnet"),
    (dict(NET, range="10.20.0.0/25"), "not inside the subnet"),
    (dict(NET, mtu=20), "mtu:"),
])
def test_bad_networks(network, message):
    errors = d.errors(network, [{"name": "a"}])
    assert len(errors) == 1 and message in errors[0], errors


def test_images_are_named_once():
    assert "declared twice" in d.errors(NET, [], [{"name": "x"}, {"name": "x"}])[0]
    assert "images[0].name" in d.errors(NET, [], [{"name": ""}])[0]


def test_network_defaults_the_gateway_to_the_first_host():
    net = d.Network("br0", "10.10.0.0/24")
    assert str(net.gateway) == "10.10.0.1" and net.gateway_cidr == "10.10.0.1/24"
    with pytest.raises(InvalidInput):
        d.check_containers([{"name": "a", "address": "10.10.0.1"}], net)


def test_the_filter_returns_messages_and_rejects_wrong_types():
    assert declaration_errors(NET, [{"name": "a"}], None) == []
    assert declaration_errors(NET, [{"name": "a"}, {"name": "a"}])
    with pytest.raises(Exception):
        declaration_errors("br0", [])
