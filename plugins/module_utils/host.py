# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What this host's kernel offers: features, cgroup controllers, pyroute2.

Read-only and cheap (a few files), so host_info reports it and compose checks
what its declaration needs before changing anything.
"""

from __future__ import annotations

import os
import re

# Kernel feature -> (module name, kernel config option, a path that proves it is present)
KERNEL_FEATURES = {
    "netns": (None, "CONFIG_NET_NS", "/proc/self/ns/net"),
    "bridge": ("bridge", "CONFIG_BRIDGE", "/sys/module/bridge"),
    "veth": ("veth", "CONFIG_VETH", "/sys/module/veth"),
    "overlay": ("overlay", "CONFIG_OVERLAY_FS", "/sys/module/overlay"),
    "vxlan": ("vxlan", "CONFIG_VXLAN", "/sys/module/vxlan"),
    "nf_tables": ("nf_tables", "CONFIG_NF_TABLES", "/sys/module/nf_tables"),
}
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")


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
    """builtin, loaded, module (loadable), missing, or unknown (nothing to tell by)."""
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
                if option in V1_CONTROLLERS:
                    v1[option] = m[1]
    unified = read(os.path.join(v2[0], "cgroup.controllers")).split() if v2 else []
    if v1 and unified:
        return {"version": "hybrid", "controllers": sorted(set(v1) | set(unified)),
                "v1": sorted(v1), "v2": unified}
    if v1:
        return {"version": 1, "controllers": sorted(v1)}
    return {"version": 2, "controllers": unified}


DPKG_STATUS = "/var/lib/dpkg/status"
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")  # Debian policy 5.6.1


def installed_packages(names, status_text):
    """{name: version} of those of ``names`` that dpkg's status database says are installed.

    ``status_text`` is /var/lib/dpkg/status: one stanza per package (and architecture),
    ``Status: <want> <flag> <state>``. A name may carry an architecture (``pkg:amd64``).
    Read in one pass, where the apt module opens the whole apt cache (seconds).
    """
    wanted = {}
    for name in names:
        package, dummy, arch = name.partition(":")
        wanted.setdefault(package, []).append((name, arch))
    found = {}
    fields = {}
    for line in status_text.splitlines() + [""]:
        if line and line[0] not in " \t":
            key, dummy, value = line.partition(":")
            if key in ("Package", "Status", "Version", "Architecture"):
                fields[key] = value.strip()
        elif not line:
            if fields.get("Package") in wanted and fields.get("Status", "").endswith(" installed"):
                for name, arch in wanted[fields["Package"]]:
                    if not arch or arch == fields.get("Architecture"):
                        found[name] = fields.get("Version")
            fields = {}
    return found


def pyroute2_version(load=False):
    """The version of the pyroute2 this Python would import, or None.

    From its package metadata unless ``load``: importing pyroute2 0.7 costs 0.1-0.2 s
    (it imports every one of its entry points), its metadata ~40 ms.
    """
    if not load:
        import importlib.util

        if importlib.util.find_spec("pyroute2") is None:
            return None
        try:
            from importlib import metadata

            return metadata.version("pyroute2")
        except Exception:  # no metadata (a copy on sys.path): ask the package itself
            pass
    try:
        import pyroute2
    except ImportError:
        return None
    return getattr(pyroute2, "__version__", "unknown")


def missing(require):
    """The required features this host lacks, each with why; ValueError on an unknown name."""
    release = os.uname().release
    config = None
    controllers = None
    lacking = []
    for need in require:
        if need.startswith("cgroup:"):
            if controllers is None:
                controllers = cgroups()["controllers"]
            if need.split(":", 1)[1] not in controllers:
                lacking.append("%s (cgroup controller not available)" % need)
        elif need == "pyroute2":
            if pyroute2_version(load=True) is None:  # importable, not only installed
                lacking.append("pyroute2 (install python3-pyroute2)")
        elif need in KERNEL_FEATURES:
            _module, _option, proof = KERNEL_FEATURES[need]
            if os.path.exists(proof):
                continue  # the common case, without reading the kernel config
            if config is None:
                config = kernel_config()
            if kernel_feature(need, release, config) == "missing":
                lacking.append("%s (kernel feature: not built in and no module for %s)" % (need, release))
        else:
            raise ValueError("unknown feature %r" % need)
    return lacking
