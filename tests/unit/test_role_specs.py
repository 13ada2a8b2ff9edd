# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each role's documented defaults (meta/argument_specs.yml, what ansible-doc shows) are the
values its defaults/main.yml really sets: Ansible validates a role's variables against the
spec but takes their values from defaults/main.yml, so the two must not drift apart."""

from __future__ import annotations

import os

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")


def role_files(role):
    with open(os.path.join(ROLES, role, "meta", "argument_specs.yml")) as fh:
        options = yaml.safe_load(fh)["argument_specs"]["main"].get("options") or {}
    path = os.path.join(ROLES, role, "defaults", "main.yml")
    defaults = {}
    if os.path.exists(path):
        with open(path) as fh:
            defaults = yaml.safe_load(fh) or {}
    return options, defaults


@pytest.mark.parametrize("role", sorted(os.listdir(ROLES)))
def test_documented_defaults_are_the_roles_defaults(role):
    options, defaults = role_files(role)
    for name, value in defaults.items():
        assert name in options, "%s: %s is set in defaults/main.yml but not documented" % (role, name)
        if isinstance(value, str) and "{{" in value:
            # Computed from other variables: the description says how, there is no literal default.
            assert "default" not in options[name], "%s: %s" % (role, name)
            description = options[name]["description"]
            if isinstance(description, list):
                description = " ".join(description)
            assert "default" in description.lower(), "%s: %s" % (role, name)
            continue
        assert options[name].get("default") == value, "%s: %s documents another default" % (role, name)
    for name, spec in options.items():
        # A default only in the spec would be documented but never set.
        assert "default" not in spec or name in defaults, "%s: %s" % (role, name)
