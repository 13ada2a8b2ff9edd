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
options:
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
  - handbuilt.containers developers
"""

EXAMPLES = r"""
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
missing:
  description: The required features that are missing.
  returned: always
  type: list
  elements: str
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

# Kernel feature -> (module name, kernel config option, a path that proves it is present)
KERNEL_FEATURES = {
    "netns": (None, "CONFIG_NET_NS", "/proc/self/ns/net"),
    "bridge": ("bridge", "CONFIG_BRIDGE", "/sys/module/bridge"),
    "veth": ("veth", "CONFIG_VETH", "/sys/module/veth"),
    "overlay": ("overlay", "CONFIG_OVERLAY_FS", "/sys/module/overlay"),
    "vxlan": ("vxlan", "CONFIG_VXLAN", "/sys/module/vxlan"),
    "nf_tables": ("nf_tables", "CONFIG_NF_TABLES", "/sys/module/nf_tables"),
}


def read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def kernel_config():
    """The running kernel's build options, where the kernel exposes them."""
    import gzip

    try:
        with gzip.open("/proc/config.gz", "rt") as fh:
            return fh.read()
    except OSError:
        return read("/boot/config-%s" % os.uname().release)


def kernel_feature(name, release, config):
    module, option, proof = KERNEL_FEATURES[name]
    if name == "overlay" and "overlay" in read("/proc/filesystems"):
        return "loaded"
    if os.path.exists(proof):
        return "loaded" if module else "builtin"
    if "%s=y" % option in config:
        return "builtin"
    if "%s=m" % option in config:
        return "module"
    if module:
        if "/%s.ko" % module in read("/lib/modules/%s/modules.builtin" % release):
            return "builtin"
        if "/%s.ko" % module in read("/lib/modules/%s/modules.dep" % release):
            return "module"
    return "missing" if config or os.path.isdir("/lib/modules/" + release) else "unknown"


def cgroups():
    mounts = [line.split() for line in read("/proc/self/mounts").splitlines()]
    v2 = [m[1] for m in mounts if m[2] == "cgroup2"]
    v1 = {}
    for m in mounts:
        if m[2] == "cgroup":
            for option in m[3].split(","):
                if option in ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer"):
                    v1[option] = m[1]
    unified = read(os.path.join(v2[0], "cgroup.controllers")).split() if v2 else []
    if v1 and unified:
        return {"version": "hybrid", "controllers": sorted(set(v1) | set(unified)),
                "v1": sorted(v1), "v2": unified}
    if v1:
        return {"version": 1, "controllers": sorted(v1)}
    return {"version": 2, "controllers": unified}


def main():
    module = AnsibleModule(argument_spec=dict(require=dict(type="list", elements="str", default=[])),
                           supports_check_mode=True)
    release = os.uname().release
    config = kernel_config()
    features = {name: kernel_feature(name, release, config) for name in KERNEL_FEATURES}
    cgroup = cgroups()
    try:
        import pyroute2
        version = getattr(pyroute2, "__version__", "unknown")
    except ImportError:
        version = None
    tools = {tool: shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")
             for tool in ("ip", "nft", "iptables", "unshare", "nsenter", "busybox")}
    missing = []
    for need in module.params["require"]:
        if need.startswith("cgroup:"):
            if need.split(":", 1)[1] not in cgroup["controllers"]:
                missing.append("%s (cgroup controller not available)" % need)
        elif need == "pyroute2":
            if version is None:
                missing.append("pyroute2 (install python3-pyroute2)")
        elif need in features:
            if features[need] == "missing":
                missing.append("%s (kernel feature: not built in and no module for %s)" % (need, release))
        else:
            module.fail_json(msg="require: unknown feature %r" % need)
    result = dict(changed=False, kernel=release, features=features, cgroup=cgroup, tools=tools,
                  pyroute2=version, missing=missing)
    if missing:
        module.fail_json(msg="this host lacks: %s" % ", ".join(missing), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
