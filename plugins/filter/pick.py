# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pick filter: the given keys of a dict, leaving out the absent ones."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pick
short_description: Keep only the given keys of a dictionary
version_added: 0.1.0
description:
  - Returns a new dictionary with the keys of O(_input) listed in O(keys); keys the input does not
    have are left out (not set to null), so a module's defaults still apply.
positional: keys
options:
  _input:
    description: The dictionary.
    type: dict
    required: true
  keys:
    description: The keys to keep.
    type: list
    elements: str
    required: true
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Pass each container's network fields only
  ansible.builtin.debug:
    msg: "{{ handbuilt_containers | map('handbuilt.containers.pick', ['name', 'address']) }}"
"""

RETURN = r"""
_value:
  description: The dictionary restricted to O(keys).
  type: dict
"""

from ansible.errors import AnsibleFilterError


def pick(data, keys):
    if not isinstance(data, dict):
        raise AnsibleFilterError("pick: expected a dictionary, got %s" % type(data).__name__)
    return {key: data[key] for key in keys if key in data}


class FilterModule:
    def filters(self):
        return {"pick": pick}
