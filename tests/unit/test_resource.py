# -*- coding: utf-8 -*-
"""The glue's root check (pure logic); that a module run as a user stops with it before it
touches anything is proven in tests/integration/test_playbooks.py."""

from __future__ import annotations

from ansible_collections.handbuilt.containers.plugins.module_utils import cgroup, resource


def test_root_passes_and_a_user_is_told_what_to_do():
    assert resource.not_root_message(0) is None
    msg = resource.not_root_message(1000)
    assert "uid 1000" in msg and "become: true" in msg and "ansible_become=true" in msg


def test_only_read_only_models_run_without_root():
    assert resource.Resource.needs_root and cgroup.Cgroup.needs_root
    assert not cgroup.CgroupInfo.needs_root
