# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The declaration_errors filter: a stack's declaration checked on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
name: declaration_errors
short_description: What is wrong with a declared network, images and containers
version_added: 0.1.0
description:
  - Checks a declaration as M(handbuilt.containers.compose) does before it changes anything - names
    (containers at most 12 bytes, interface names at most 15), duplicate names, addresses, veths or
    published ports, addresses outside the subnet or equal to the gateway, limits, ports, commands -
    but on the controller, before any host is touched and without a module run.
  - Returns a list of messages, empty when the declaration is good.
positional: containers, images
options:
  _input:
    description: The network - C(bridge), C(subnet), and optionally C(gateway), C(range), C(mtu).
    type: dict
    required: true
  containers:
    description: The containers, as M(handbuilt.containers.compose) takes them.
    type: list
    elements: dict
    required: true
  images:
    description: The images, as M(handbuilt.containers.compose) takes them.
    type: list
    elements: dict
    default: []
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Fail before any host changes when the declaration is wrong
  ansible.builtin.assert:
    that: handbuilt_errors | length == 0
    fail_msg: "{{ handbuilt_errors | join('; ') }}"
  vars:
    handbuilt_errors: "{{ handbuilt_network | handbuilt.containers.declaration_errors(handbuilt_containers, handbuilt_images) }}"
"""

RETURN = r"""
_value:
  description: The problems found, each naming where it is (for example C(containers[2].address)).
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.handbuilt.containers.plugins.module_utils import declaration


def declaration_errors(network, containers, images=None):
    if not isinstance(network, dict):
        raise AnsibleFilterError("declaration_errors: the network must be a dictionary, got %s"
                                 % type(network).__name__)
    if not isinstance(containers, list) or not isinstance(images or [], list):
        raise AnsibleFilterError("declaration_errors: containers and images must be lists")
    return declaration.errors(network, containers, images or [])


class FilterModule:
    def filters(self):
        return {"declaration_errors": declaration_errors}
