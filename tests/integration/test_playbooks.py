# -*- coding: utf-8 -*-
"""build_container.yml and teardown.yml, as users run them, inside the sandbox."""

from __future__ import annotations

import conftest
from conftest import ping, sh, snapshot

BUILD = "playbooks/build_container.yml"
TEARDOWN = "playbooks/teardown.yml"
# The sandbox has no network for apt; the packages are installed by `make setup`.
VARS = {"prerequisites_install_packages": False}


def test_build_rerun_check_teardown(ansible):
    check = ansible.playbook(BUILD, check=True, diff=True, extra_vars=VARS)
    assert check.rc == 0, check
    assert check.changed > 0
    assert snapshot() == conftest.EMPTY, "check mode changed the host"

    first = ansible.playbook(BUILD, extra_vars=VARS)
    assert first.rc == 0, first
    nets = first.result("Network namespaces, veth pairs, addresses and routes of every container")
    web, client = nets["containers"]["web"]["address"], nets["containers"]["client"]["address"]
    assert ping(web, netns="client") and ping(client, netns="web")
    assert ping("10.10.0.1", netns="web")

    again = ansible.playbook(BUILD, extra_vars=VARS)
    assert again.rc == 0 and again.changed == 0, again
    assert ansible.playbook(BUILD, check=True, extra_vars=VARS).changed == 0

    down = ansible.playbook(TEARDOWN)
    assert down.rc == 0 and down.changed > 0, down
    assert snapshot() == conftest.EMPTY
    assert ansible.playbook(TEARDOWN).changed == 0


def test_addresses_are_kept_when_containers_are_added(ansible):
    two = {"handbuilt_containers": [{"name": "a"}, {"name": "b"}]}
    first = ansible.playbook(BUILD, extra_vars=dict(VARS, **two))
    assert first.rc == 0, first
    three = {"handbuilt_containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}
    second = ansible.playbook(BUILD, extra_vars=dict(VARS, **three))
    assert second.rc == 0, second
    name = "Network namespaces, veth pairs, addresses and routes of every container"
    before, after = first.result(name)["containers"], second.result(name)["containers"]
    assert before["a"]["address"] == after["a"]["address"]
    assert before["b"]["address"] == after["b"]["address"]
    assert after["c"]["address"] not in (after["a"]["address"], after["b"]["address"])
    assert "hb-c" in sh("ip", "-br", "link")
    assert ansible.playbook(TEARDOWN, extra_vars=three).rc == 0
    assert snapshot() == conftest.EMPTY


def test_bad_declarations_fail_before_anything_changes(ansible):
    cases = [
        ({"handbuilt_containers": [{"name": "a"}, {"name": "a"}]}, "declared twice"),
        ({"handbuilt_containers": [{"name": "a", "address": "10.10.0.7"},
                                   {"name": "b", "address": "10.10.0.7"}]}, "also the address"),
        ({"handbuilt_containers": [{"name": "a", "address": "10.99.0.7"}]}, "not a host address"),
        ({"handbuilt_containers": [{"name": "much-too-long-name"}]}, "longer than 12"),
    ]
    for extra, message in cases:
        run = ansible.playbook(BUILD, extra_vars=dict(VARS, **extra))
        assert run.rc != 0 and message in run.output, (extra, run)
        assert snapshot() == conftest.EMPTY, extra
