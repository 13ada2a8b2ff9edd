#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: host_info
short_description: Report what this host's kernel and userland offer for hand-built containers
version_added: 0.1.0
description:
  - Read-only. Reports network namespace support, whether the kernel features the collection uses
    are built in or loadable as modules (bridge, veth, overlay, vxlan, nf_tables), the cgroup
    version and its controllers, the firewall tools and the pyroute2 version.
  - With O(require), fails with one message naming everything that is missing.
  - With O(packages), reports which of these Debian packages are installed, from dpkg's status
    database - so a play can run M(ansible.builtin.apt) only when one is missing (the apt module
    opens the whole apt cache, seconds on every run).
options:
  packages:
    description: Debian package names (V(name) or V(name:arch)) to look up in dpkg's database.
    type: list
    elements: str
    default: []
  require:
    description:
      - Features that must be available; the task fails naming each one that is not.
      - Kernel features - V(netns), V(bridge), V(veth), V(overlay), V(vxlan), V(nf_tables).
        cgroup controllers - V(cgroup:memory), V(cgroup:cpu), V(cgroup:pids), and so on.
        Python - V(pyroute2).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Read-only; runs in check mode too.
  diff_mode:
    support: none
    description: Changes nothing.
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Which packages are missing
  handbuilt.containers.host_info:
    packages: [iproute2, nftables, tini]
  register: host

- name: Install only what is missing
  ansible.builtin.apt:
    name: "{{ host.packages_missing }}"
  when: host.packages_missing | length > 0

- name: Fail early, naming what this host lacks
  handbuilt.containers.host_info:
    require: [netns, bridge, veth, overlay, "cgroup:memory", "cgroup:cpu", "cgroup:pids", pyroute2]
"""

RETURN = r"""
kernel:
  description: The running kernel's release.
  returned: always
  type: str
features:
  description:
    - For each kernel feature, V(builtin), V(loaded), V(module) (loadable), V(missing), or
      V(unknown) when the kernel exposes neither its config nor its module lists.
  returned: always
  type: dict
  sample: {"bridge": "loaded", "veth": "module", "overlay": "builtin", "netns": "builtin"}
cgroup:
  description: The cgroup version (1, 2, or V(hybrid)) and the available controllers.
  returned: always
  type: dict
  sample: {"version": 2, "controllers": ["cpu", "io", "memory", "pids"]}
tools:
  description: Paths of the userland tools the collection's roles use, or null.
  returned: always
  type: dict
pyroute2:
  description: The pyroute2 version importable by the module's Python, or null.
  returned: always
  type: str
packages:
  description: The installed version of each package of O(packages) that is installed.
  returned: always
  type: dict
  sample: {"iproute2": "6.1.0-3", "tini": "0.19.0-1"}
packages_missing:
  description: The packages of O(packages) that are not installed, in the order given.
  returned: always
  type: list
  elements: str
missing:
  description: The required features that are missing.
  returned: always
  type: list
  elements: str
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils import host


def main():
    module = AnsibleModule(argument_spec=dict(require=dict(type="list", elements="str", default=[]),
                                              packages=dict(type="list", elements="str", default=[])),
                           supports_check_mode=True)
    bad = [p for p in module.params["packages"] if not host.PACKAGE_NAME.match(p)]
    if bad:
        module.fail_json(msg="packages: not Debian package names: %s" % ", ".join(map(repr, bad)))
    release = os.uname().release
    config = host.kernel_config()
    features = {name: host.kernel_feature(name, release, config) for name in host.KERNEL_FEATURES}
    tools = {tool: shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")
             for tool in ("ip", "nft", "iptables", "unshare", "nsenter", "busybox")}
    result = dict(changed=False, kernel=release, features=features, cgroup=host.cgroups(),
                  tools=tools, pyroute2=host.pyroute2_version(), missing=[])
    if module.params["packages"]:
        result["packages"] = host.installed_packages(module.params["packages"], host.read(host.DPKG_STATUS))
    else:
        result["packages"] = {}
    result["packages_missing"] = [p for p in module.params["packages"] if p not in result["packages"]]
    try:
        result["missing"] = host.missing(module.params["require"])
    except ValueError as exc:
        module.fail_json(msg="require: %s" % exc)
    if result["missing"]:
        module.fail_json(msg="this host lacks: %s" % ", ".join(result["missing"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
