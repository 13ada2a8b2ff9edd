# -*- coding: utf-8 -*-
"""A fake cgroupfs in a temporary directory, for the cgroup model's unit tests.

It lays out v2 and/or v1 hierarchies as plain files and emulates what the
kernel does on writes (page rounding, "max" and -1, subtree_control +/-, the
"no internal processes" rule, memory.limit <= memsw, cpuset list syntax, io.max
merging), so plans can be applied and re-read to prove idempotence.
"""

from __future__ import annotations

import errno
import os

from ansible_collections.handbuilt.containers.plugins.module_utils import cgroup as cg

PAGE = 4096
V1_MAX = 9223372036854771712
V2_FILES = {
    "memory": {"memory.max": "max", "memory.high": "max", "memory.swap.max": "max",
               "memory.current": "0", "memory.peak": "0",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"},
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100",
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\n"
                        "nr_throttled 0\nthrottled_usec 0\n"},
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0\n"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "io": {"io.max": ""},
}
V1_FILES = {
    "memory": {"memory.limit_in_bytes": str(V1_MAX), "memory.memsw.limit_in_bytes": str(V1_MAX),
               "memory.usage_in_bytes": "0", "memory.max_usage_in_bytes": "0",
               "memory.failcnt": "0", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "cpu": {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.shares": "1024",
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuacct": {"cpuacct.usage": "0", "cpuacct.stat": "user 0\nsystem 0\n"},
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0\n"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "blkio": {f: "" for f in cg.V1_IO_FILES.values()},
}


def _err(code, path):
    return OSError(code, os.strerror(code), path)


class FakeCgroupFs(cg.HostFs):
    def __init__(self, root):
        self.root = root
        self.mounts = {}   # mount point -> (version, controllers)
        self.writes = []

    # --- building the tree ---------------------------------------------------
    def add_v2(self, mount, controllers=("cpu", "cpuset", "io", "memory", "pids"), subtree=()):
        os.makedirs(mount)
        self.mounts[mount] = (2, tuple(controllers))
        self._put(mount, {"cgroup.controllers": " ".join(controllers),
                          "cgroup.subtree_control": " ".join(subtree), "cgroup.procs": ""})
        return mount

    def add_v1(self, mount, controllers):
        os.makedirs(mount)
        self.mounts[mount] = (1, tuple(controllers))
        files = {"cgroup.procs": "", "tasks": ""}
        for c in controllers:
            files.update(V1_FILES[c])
        if "cpuset" in controllers:
            files.update({"cpuset.cpus": "0-3", "cpuset.mems": "0"})
        self._put(mount, files)
        return mount

    def mountinfo(self):
        lines = []
        for i, (mount, (version, ctrls)) in enumerate(sorted(self.mounts.items())):
            if version == 2:
                lines.append("%d 1 0:%d / %s rw,relatime - cgroup2 cgroup2 rw" % (30 + i, 30 + i, mount))
            else:
                lines.append("%d 1 0:%d / %s rw,relatime - cgroup cgroup rw,%s"
                             % (30 + i, 30 + i, mount, ",".join(ctrls)))
        return "\n".join(lines) + "\n"

    def hand_mkdir(self, path, procs=()):
        """A cgroup someone else made (as the kernel would populate it)."""
        self.mkdir(path)
        if procs:
            self._put(path, {"cgroup.procs": "\n".join(str(p) for p in procs)})

    def _put(self, d, files):
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as fh:
                fh.write(text + ("\n" if text and not text.endswith("\n") else ""))

    def _mount_of(self, path):
        best = None
        for mount in self.mounts:
            if path == mount or path.startswith(mount + "/"):
                if best is None or len(mount) > len(best):
                    best = mount
        return best

    def _get(self, path):
        with open(path) as fh:
            return fh.read().strip()

    # --- the kernel's side ---------------------------------------------------
    def mkdir(self, path):
        os.mkdir(path)
        mount = self._mount_of(path)
        version, ctrls = self.mounts[mount]
        if version == 2:
            enabled = self._get(os.path.join(os.path.dirname(path), "cgroup.subtree_control")).split()
            files = {"cgroup.controllers": " ".join(enabled), "cgroup.subtree_control": "",
                     "cgroup.procs": "", "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.kill": ""}
            for c in enabled:
                files.update(V2_FILES[c])
        else:
            files = {"cgroup.procs": "", "tasks": ""}
            for c in ctrls:
                files.update(V1_FILES[c])
        self._put(path, files)

    def rmdir(self, path):
        if self.subdirs(path) or self._get(os.path.join(path, "cgroup.procs")):
            raise _err(errno.EBUSY, path)
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)

    def write(self, path, text):
        if not os.path.isfile(path):
            raise _err(errno.ENOENT, path)
        self.writes.append((path, text))
        d, name = os.path.split(path)
        mount = self._mount_of(path)
        version = self.mounts[mount][0]
        text = str(text).strip()
        old = self._get(path)
        if name == "cgroup.subtree_control":
            have = old.split()
            offered = self._get(os.path.join(d, "cgroup.controllers")).split()
            if d != mount and self._get(os.path.join(d, "cgroup.procs")):
                raise _err(errno.EBUSY, path)
            for word in text.split():
                c = word[1:]
                if c not in offered:
                    raise _err(errno.ENOENT, path)
                if word[0] == "+" and c not in have:
                    have.append(c)
                elif word[0] == "-" and c in have:
                    have.remove(c)
            new = " ".join(c for c in cg.CONTROLLERS if c in have)
            for child in self.subdirs(d):
                cdir = os.path.join(d, child)
                self._put(cdir, {"cgroup.controllers": new})
                for c in have:
                    for fname, default in V2_FILES[c].items():
                        if not os.path.exists(os.path.join(cdir, fname)):
                            self._put(cdir, {fname: default})
        elif name == "cgroup.procs":
            if version == 2 and d != mount and self._get(os.path.join(d, "cgroup.subtree_control")):
                raise _err(errno.EBUSY, path)
            new = "\n".join(old.split() + [text])
        elif name in ("memory.max", "memory.high", "memory.swap.max"):
            new = "max" if text == "max" else str(int(text) // PAGE * PAGE)
        elif name == "cpu.max":
            words = text.split()
            new = "%s %s" % (words[0], words[1] if len(words) > 1 else old.split()[1])
        elif name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            value = V1_MAX if int(text) < 0 else int(text) // PAGE * PAGE
            other = "memory.memsw.limit_in_bytes" if name == "memory.limit_in_bytes" \
                else "memory.limit_in_bytes"
            other_value = int(self._get(os.path.join(d, other)))
            limit, memsw = (value, other_value) if name == "memory.limit_in_bytes" else (other_value, value)
            if limit > memsw:
                raise _err(errno.EINVAL, path)
            new = str(value)
        elif name in ("cpuset.cpus", "cpuset.mems"):
            new = cg.format_idlist(cg.parse_idlist(text))
        elif name == "io.max":
            devno, *pairs = text.split()
            table = cg.parse_io_v2(old)
            limits = table.get(devno, dict.fromkeys(cg.IO_KEYS, "max"))
            for pair in pairs:
                k, dummy, v = pair.partition("=")
                limits[k] = "max" if v == "max" else int(v)
            table[devno] = limits
            new = "\n".join("%s %s" % (dev, " ".join("%s=%s" % (k, lim[k]) for k in cg.IO_KEYS))
                            for dev, lim in sorted(table.items())
                            if any(v != "max" for v in lim.values()))
        elif name.startswith("blkio.throttle."):
            devno, value = text.split()
            table = dict(line.split() for line in old.splitlines() if line.strip())
            if value == "0":
                table.pop(devno, None)
            else:
                table[devno] = value
            new = "\n".join("%s %s" % kv for kv in sorted(table.items()))
        else:
            new = text
        with open(path, "w") as fh:
            fh.write(new + ("\n" if new else ""))


class FakeHost:
    """A tmp dir with fake cgroupfs, /proc and /sys, and a Layout over them."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.fs = FakeCgroupFs(self.tmp)
        self.proc = os.path.join(self.tmp, "proc")
        self.sys = os.path.join(self.tmp, "sys")
        self.state_dir = os.path.join(self.tmp, "run", "handbuilt")
        for path, text in (("devices/system/cpu/online", "0-3"), ("devices/system/node/online", "0")):
            os.makedirs(os.path.join(self.sys, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(self.sys, path), "w") as fh:
                fh.write(text + "\n")
        os.makedirs(os.path.join(self.sys, "dev", "block", "8:0"))
        os.makedirs(os.path.join(self.sys, "dev", "block", "8:1"))
        open(os.path.join(self.sys, "dev", "block", "8:1", "partition"), "w").close()

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def process(self, pid, cgroups, state="S"):
        """A fake /proc/<pid> with its /proc/<pid>/cgroup lines."""
        d = os.path.join(self.proc, str(pid))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "stat"), "w") as fh:
            fh.write("%d (fake proc) %s 1 1 1\n" % (pid, state))
        with open(os.path.join(d, "cgroup"), "w") as fh:
            fh.write("".join("%s\n" % line for line in cgroups))

    def layout(self):
        return cg.Layout(self.fs.mountinfo(), fs=self.fs, proc=self.proc, sysfs=self.sys,
                         page_size=PAGE)

    def cgroup(self, name="web", **kw):
        kw.setdefault("state_dir", self.state_dir)
        return cg.Cgroup(self.layout(), name, **kw)

    def files(self):
        """Every file and its content under the fake cgroupfs (for 'nothing changed')."""
        out = {}
        for mount in self.fs.mounts:
            for root, dirs, files in os.walk(mount):
                for f in files:
                    with open(os.path.join(root, f)) as fh:
                        out[os.path.join(root, f)] = fh.read()
                for d in dirs:
                    out[os.path.join(root, d)] = "<dir>"
        for root, dirs, files in os.walk(self.state_dir):
            for f in files:
                out[os.path.join(root, f)] = "<marker>"
        return out


def v2_host(tmp, **kw):
    host = FakeHost(tmp)
    host.fs.add_v2(host.path("sys/fs/cgroup"), **kw)
    return host


def v1_host(tmp, memory_anchor=None):
    """The development machine's layout: v1 per controller, a near-empty v2 'unified'."""
    host = FakeHost(tmp)
    base = host.path("sys/fs/cgroup")
    for ctrl in ("cpu", "cpuacct", "cpuset", "memory", "blkio", "pids"):
        host.fs.add_v1(os.path.join(base, ctrl), (ctrl,))
    host.fs.add_v2(os.path.join(base, "unified"), controllers=("hugetlb",))
    if memory_anchor:
        path = os.path.join(base, "memory")
        for part in memory_anchor.strip("/").split("/"):
            path = os.path.join(path, part)
            host.fs.mkdir(path)
    return host
