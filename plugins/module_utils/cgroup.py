# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model of a cgroup: limits on cgroup v2, with a per-controller v1 fallback.

``Layout`` reads the mount table (``/proc/self/mountinfo``) once and says
where each controller lives: in a cgroup v1 hierarchy of its own
(``/sys/fs/cgroup/memory``) or in the cgroup v2 hierarchy. ``Cgroup`` is one
declared cgroup; a module converging many cgroups builds one Layout and loops
over Cgroup objects. Everything is plain file I/O through ``HostFs`` (no
subprocess); every Op carries the hand command it stands for
(``mkdir /sys/fs/cgroup/handbuilt/web``, ``echo 52428800 >
/sys/fs/cgroup/handbuilt/web/memory.max``).

Placement: a cgroup lives at ``<hierarchy mount>/<anchor>/<parent>/<name>``.
The anchor is the hierarchy root, or, with ``relative_to_pid``, the cgroup
that process is in (per hierarchy, from ``/proc/<pid>/cgroup``), so a caller
can nest the collection's cgroups beneath its own.

Ownership: every directory the collection creates gets a marker holding its
inode, ``<state_dir>/cgroups/<cgroup dir without the leading />/.owner``; a
re-created cgroup of the same name has another inode and is not ours.

Writes: only beneath ``<anchor>/<parent>``, except that on cgroup v2 the
controllers a limit needs are added (never removed) to the
``cgroup.subtree_control`` of the anchor and of the parent's components, as
the v2 rules require. No process is moved unless listed in ``pids``.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import time

from ansible_collections.handbuilt.containers.plugins.module_utils import validate
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import (
    Op,
    PlanError,
    render,
    shell_quote,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    DEFAULT_STATE_DIR,
    Resource,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput

ABSENT = {"state": "absent"}
DEFAULT_PARENT = "handbuilt"
MARKER = ".owner"

# The controllers this collection manages, in the order they are handled.
CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
# Every cgroup joins these where available, so a process placed in it is accounted.
DEFAULT_CONTROLLERS = ("cpu", "memory", "pids")
# cgroup v1 hierarchy names of each controller; the first one is the one that limits.
V1_NAMES = {"cpu": ("cpu", "cpuacct"), "cpuset": ("cpuset",), "io": ("blkio",),
            "memory": ("memory",), "pids": ("pids",)}
KNOWN_V1 = frozenset(("cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "devices", "freezer",
                      "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"))
MANAGED_V1 = frozenset(n for names in V1_NAMES.values() for n in names)

# One table from each limit to its controller and files, v2 then v1 (as runc keeps it).
LIMITS = {
    "memory_max": ("memory", "memory.max", "memory.limit_in_bytes"),
    "memory_high": ("memory", "memory.high", None),
    "memory_swap_max": ("memory", "memory.swap.max", "memory.memsw.limit_in_bytes"),
    "cpu_max": ("cpu", "cpu.max", "cpu.cfs_quota_us cpu.cfs_period_us"),
    "cpus": ("cpu", "cpu.max", "cpu.cfs_quota_us cpu.cfs_period_us"),
    "cpu_weight": ("cpu", "cpu.weight", "cpu.shares"),
    "pids_max": ("pids", "pids.max", "pids.max"),
    "cpuset_cpus": ("cpuset", "cpuset.cpus", "cpuset.cpus"),
    "cpuset_mems": ("cpuset", "cpuset.mems", "cpuset.mems"),
    "io_max": ("io", "io.max", "blkio.throttle.{read,write}_{bps,iops}_device"),
}
IO_KEYS = ("rbps", "wbps", "riops", "wiops")
V1_IO_FILES = {"rbps": "blkio.throttle.read_bps_device", "wbps": "blkio.throttle.write_bps_device",
               "riops": "blkio.throttle.read_iops_device", "wiops": "blkio.throttle.write_iops_device"}

CPU_PERIOD_DEFAULT = 100000
CPU_PERIOD_MIN, CPU_PERIOD_MAX = 1000, 1000000   # the kernel's cfs period range, in µs
CPU_QUOTA_MIN = 1000
CPU_QUOTA_MAX = (1 << 44) - 1                   # the kernel's max_cfs_runtime, in µs
PID_MAX_LIMIT = 4 * 1024 * 1024
V1_UNLIMITED = (1 << 63) - (1 << 16)            # v1 reports "no limit" as LONG_MAX page-rounded
SHARES_MIN, SHARES_MAX = 2, 262144
KILL_TIMEOUT = 10.0
# Names of cgroupfs interface files; a child cgroup called like one cannot exist.
RESERVED_NAMES = frozenset(("tasks", "notify_on_release", "release_agent"))
RESERVED_PREFIXES = frozenset(("cgroup", "cpu", "cpuacct", "cpuset", "memory", "io", "blkio", "pids",
                               "hugetlb", "rdma", "misc", "devices", "freezer", "net_cls",
                               "net_prio", "perf_event"))


# ---------------------------------------------------------------------------
# Conversions shared by v1 and v2
def weight_to_shares(weight):
    """cgroup v2 cpu.weight (1-10000) -> v1 cpu.shares (2-262144); round-trips exactly."""
    return SHARES_MIN + int(round((weight - 1) * (SHARES_MAX - SHARES_MIN) / 9999.0))


def shares_to_weight(shares):
    """v1 cpu.shares -> v2 cpu.weight (the mapping runc and systemd use, rounded)."""
    shares = min(max(shares, SHARES_MIN), SHARES_MAX)
    return 1 + int(round((shares - SHARES_MIN) * 9999.0 / (SHARES_MAX - SHARES_MIN)))


def page_round(value, page=None):
    """Memory limits are kept in whole pages: the kernel rounds a written value down."""
    if value == "max" or value is None:
        return value
    page = page or os.sysconf("SC_PAGE_SIZE")
    return value // page * page


def parse_idlist(text):
    """'0-2,5' -> {0, 1, 2, 5} (cpuset list syntax); raises ValueError."""
    result = set()
    text = text.strip()
    if not text:
        return result
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            lo, hi = int(lo), int(hi)
            if lo > hi or lo < 0:
                raise ValueError(part)
            result.update(range(lo, hi + 1))
        else:
            value = int(part)
            if value < 0:
                raise ValueError(part)
            result.add(value)
    return result


def format_idlist(ids):
    """{0, 1, 2, 5} -> '0-2,5', the form the kernel prints."""
    ids = sorted(ids)
    out = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else "%d-%d" % (ids[i], ids[j]))
        i = j + 1
    return ",".join(out)


def _num_or_max(text):
    text = text.strip()
    return "max" if text == "max" else int(text)


def _v1_bytes(text):
    value = int(text.strip())
    return "max" if value >= V1_UNLIMITED or value < 0 else value


def _keyvals(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _gt(a, b):
    """a > b where 'max' is infinity."""
    if a == "max":
        return b != "max"
    return b != "max" and a > b


def echo_cmd(path, value):
    return render(["echo", str(value)]) + " > " + shell_quote(path)


# ---------------------------------------------------------------------------
# Validation (cgroup-specific; shared checks live in validate.py)
def cgroup_path(param, value, allow_empty=False):
    """A cgroup path relative to its parent: 'web' or 'web/app'."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(param, "%r must be a string" % (value,))
    if value == "":
        if allow_empty:
            return ""
        raise InvalidInput(param, "must not be empty")
    if value.startswith("/"):
        raise InvalidInput(param, "%r must be relative (no leading '/')" % value)
    for part in value.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInput(param, "%r must not contain empty, '.' or '..' components" % value)
        if part.startswith("."):
            raise InvalidInput(param, "%r: components must not start with '.'" % value)
        if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in part):
            raise InvalidInput(param, "%r must not contain spaces or control characters" % value)
        if len(part.encode("utf-8")) > 255:
            raise InvalidInput(param, "%r: a component is longer than 255 bytes" % value)
        if part in RESERVED_NAMES or ("." in part and part.split(".", 1)[0] in RESERVED_PREFIXES):
            raise InvalidInput(param, "%r collides with the cgroup interface file names "
                                      "(like memory.max or tasks)" % value)
    return value


def _int(param, value, what="an integer"):
    if isinstance(value, bool):
        raise InvalidInput(param, "%r is not %s" % (value, what))
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not re.match(r"^-?\d+$", text):
        raise InvalidInput(param, "%r is not %s" % (value, what))
    return int(text)


def check_memory(param, value):
    if value is None:
        return None
    if isinstance(value, float):
        raise InvalidInput(param, "%r is not a size (use bytes or a suffix K, M, G, T, or 'max')" % value)
    if isinstance(value, str) and value.strip().startswith("-"):
        raise InvalidInput(param, "%r must not be negative" % value)
    return validate.size(param, value)


def check_cpus(param, value, ncpus):
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(param, "%r is not a number of CPUs" % value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(param, "%r is not a number of CPUs (like 0.5 or 2)" % (value,))
    if not number > 0:  # pylint: disable=unnecessary-negation
        raise InvalidInput(param, "%r must be greater than 0" % (value,))
    if number > ncpus:
        raise InvalidInput(param, "%r is more than this host's %d CPUs" % (value, ncpus))
    quota = int(round(number * CPU_PERIOD_DEFAULT))
    if quota < CPU_QUOTA_MIN:
        raise InvalidInput(param, "%r is below the kernel's minimum of 0.01 CPU" % (value,))
    return (quota, CPU_PERIOD_DEFAULT)


def check_cpu_max(param, value, ncpus):
    """'QUOTA PERIOD' in µs, 'max' or 'max PERIOD' -> (quota or 'max', period or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(param, "%r is not \"QUOTA PERIOD\" (like \"50000 100000\") or 'max'" % (value,))
    words = str(value).split()
    if len(words) == 1 and words[0] == "max":
        return ("max", None)
    if len(words) == 1:
        raise InvalidInput(param, "%r has a quota but no period: write \"QUOTA PERIOD\" in "
                                  "microseconds, like \"50000 100000\" (or use cpus: 0.5)" % (value,))
    if len(words) != 2:
        raise InvalidInput(param, "%r is not \"QUOTA PERIOD\" (like \"50000 100000\") or 'max'" % (value,))
    quota_text, period_text = words
    if not period_text.isdigit():
        raise InvalidInput(param, "period %r is not a number of microseconds" % period_text)
    period = int(period_text)
    if not CPU_PERIOD_MIN <= period <= CPU_PERIOD_MAX:
        raise InvalidInput(param, "period %d is outside the kernel's range %d-%d microseconds"
                           % (period, CPU_PERIOD_MIN, CPU_PERIOD_MAX))
    if quota_text == "max":
        return ("max", period)
    if not quota_text.isdigit():
        raise InvalidInput(param, "quota %r is not a number of microseconds or 'max'" % quota_text)
    quota = int(quota_text)
    if not CPU_QUOTA_MIN <= quota <= CPU_QUOTA_MAX:
        raise InvalidInput(param, "quota %d is outside the kernel's range %d-%d microseconds"
                           % (quota, CPU_QUOTA_MIN, CPU_QUOTA_MAX))
    if quota > period * ncpus:
        raise InvalidInput(param, "%s allows %.2f CPUs, more than this host's %d"
                           % (value, quota / float(period), ncpus))
    return (quota, period)


def check_cpu_weight(param, value):
    if value is None:
        return None
    weight = _int(param, value)
    if not 1 <= weight <= 10000:
        raise InvalidInput(param, "%r must be between 1 and 10000" % (value,))
    return weight


def check_pids_max(param, value):
    if value is None:
        return None
    if isinstance(value, str) and value.strip() == "max":
        return "max"
    number = _int(param, value, "an integer or 'max'")
    if not 0 <= number <= PID_MAX_LIMIT:
        raise InvalidInput(param, "%r must be between 0 and %d, or 'max'" % (value, PID_MAX_LIMIT))
    return number


def check_idlist(param, value, online, what):
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(param, "%r is not a list of %s like 0-1,3" % (value, what))
    try:
        ids = parse_idlist(str(value))
    except ValueError:
        raise InvalidInput(param, "%r is not a list of %s like 0-1,3" % (value, what))
    if not ids:
        raise InvalidInput(param, "must name at least one of this host's %s" % what)
    outside = ids - set(online)
    if outside:
        raise InvalidInput(param, "%s %s not on this host (it has %s)"
                           % (what, format_idlist(outside), format_idlist(online)))
    return frozenset(ids)


def check_io_rate(param, key, value):
    """A bytes/s (rbps, wbps: sizes like 10M) or IO/s (riops, wiops) rate, or 'max'."""
    if isinstance(value, str) and value.strip() == "max":
        return "max"
    if key.endswith("bps"):
        try:
            result = check_memory(param, value)
        except InvalidInput as exc:
            raise InvalidInput(param, "%s: %s" % (key, str(exc).split(": ", 1)[1]))
    else:
        try:
            result = _int(param, value)
        except InvalidInput:
            raise InvalidInput(param, "%s: %r is not a number of IOs per second or 'max'" % (key, value))
    if result != "max" and result < 1:
        raise InvalidInput(param, "%s must be at least 1, or 'max' to remove the limit" % key)
    return result


# ---------------------------------------------------------------------------
# File access (injectable: unit tests emulate cgroupfs in a temporary directory)
class HostFs:
    """Plain file I/O on cgroupfs. Writes never create files: cgroupfs has them all."""

    def read(self, path):
        with open(path) as fh:
            return fh.read()

    def read_or_none(self, path):
        try:
            return self.read(path)
        except OSError:
            return None

    def write(self, path, text):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, str(text).encode())
        finally:
            os.close(fd)

    def isdir(self, path):
        return os.path.isdir(path)

    def exists(self, path):
        return os.path.exists(path)

    def mkdir(self, path):
        os.mkdir(path, 0o755)

    def rmdir(self, path):
        os.rmdir(path)

    def subdirs(self, path):
        try:
            return sorted(e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def inode(self, path):
        return os.stat(path).st_ino


def _unescape(text):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


class Hierarchy:
    """One mounted cgroup hierarchy: v2, or v1 with its controllers."""

    def __init__(self, mount, version, controllers=()):
        self.mount = mount
        self.version = version
        self.controllers = tuple(controllers)   # v1 kernel names (cpu, cpuacct, blkio...)

    @property
    def label(self):
        return "unified" if self.version == 2 else ",".join(self.controllers)

    def serves(self, controller):
        """Module controllers whose limits/stats this hierarchy holds (v1 only)."""
        return any(n in self.controllers for n in V1_NAMES[controller])

    def __repr__(self):
        return "Hierarchy(%r, v%d, %s)" % (self.mount, self.version, self.label)


def parse_mountinfo(text):
    """The cgroup2 mount and the v1 hierarchies (kernel controller -> Hierarchy)."""
    v2, v1 = None, {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        root, mount = _unescape(fields[3]), _unescape(fields[4])
        if root != "/":
            continue  # a bind mount of a sub-cgroup: not a hierarchy root
        if tail[0] == "cgroup2" and v2 is None:
            v2 = Hierarchy(mount, 2)
        elif tail[0] == "cgroup":
            names = [o for o in tail[2].split(",") if o in KNOWN_V1]
            if names and not any(n in v1 for n in names):
                hierarchy = Hierarchy(mount, 1, names)
                for name in names:
                    v1[name] = hierarchy
    return v2, v1


class Layout:
    """Where each controller lives on this host, read once per module call."""

    def __init__(self, mountinfo, fs=None, proc="/proc", sysfs="/sys", page_size=None):
        self.v2, self.v1 = parse_mountinfo(mountinfo)
        self.fs = fs or HostFs()
        self.proc = proc
        self.sysfs = sysfs
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self._v2_controllers = None
        self._online = {}

    @classmethod
    def detect(cls, proc="/proc", **kwargs):
        with open(os.path.join(proc, "self", "mountinfo")) as fh:
            return cls(fh.read(), proc=proc, **kwargs)

    # --- host facts used by validation -------------------------------------
    def online(self, what):
        """Online CPU or memory-node ids ('cpu' or 'node')."""
        if what not in self._online:
            path = os.path.join(self.sysfs, "devices", "system", what, "online")
            try:
                with open(path) as fh:
                    ids = parse_idlist(fh.read())
            except (OSError, ValueError):
                ids = set(range(os.cpu_count() or 1)) if what == "cpu" else {0}
            self._online[what] = frozenset(ids)
        return self._online[what]

    def ncpus(self):
        return len(self.online("cpu"))

    def block_device(self, param, device):
        """'MAJ:MIN' of a whole-disk block device given as a path or as 'MAJ:MIN'."""
        if not isinstance(device, str) or not device:
            raise InvalidInput(param, "device must be a path like /dev/vda or MAJ:MIN")
        match = re.match(r"^(\d+):(\d+)$", device)
        if match:
            devno = "%d:%d" % (int(match.group(1)), int(match.group(2)))
        else:
            try:
                st = os.stat(device)
            except OSError:
                raise InvalidInput(param, "unknown device %r (no such file)" % device)
            if not stat.S_ISBLK(st.st_mode):
                raise InvalidInput(param, "%r is not a block device" % device)
            devno = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        sysdir = os.path.join(self.sysfs, "dev", "block", devno)
        if not os.path.isdir(sysdir):
            raise InvalidInput(param, "unknown device %r (no block device %s)" % (device, devno))
        if os.path.exists(os.path.join(sysdir, "partition")):
            raise InvalidInput(param, "%r is a partition; io limits apply to whole disks" % device)
        return devno

    def process(self, param, pid):
        """A live process id (not a zombie)."""
        pid = _int(param, pid, "a process id")
        if pid <= 0:
            raise InvalidInput(param, "%r is not a process id" % pid)
        try:
            with open(os.path.join(self.proc, str(pid), "stat")) as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            raise InvalidInput(param, "process %d does not exist" % pid)
        if state in ("Z", "X"):
            raise InvalidInput(param, "process %d has exited (zombie)" % pid)
        return pid

    # --- controllers ---------------------------------------------------------
    def v2_controllers(self):
        """Controllers the v2 hierarchy offers (not bound to a v1 hierarchy)."""
        if self._v2_controllers is None:
            text = None
            if self.v2 is not None:
                text = self.fs.read_or_none(os.path.join(self.v2.mount, "cgroup.controllers"))
            self._v2_controllers = frozenset((text or "").split())
        return self._v2_controllers

    def locate(self, controller):
        """The Hierarchy holding a module controller, or None."""
        first = V1_NAMES[controller][0]
        if first in self.v1:
            return self.v1[first]
        if self.v2 is not None and controller in self.v2_controllers():
            return self.v2
        return None

    def why_missing(self, controller):
        v1name = V1_NAMES[controller][0]
        if self.v2 is None:
            return ("no cgroup v1 hierarchy has the %s controller mounted and no cgroup v2 "
                    "hierarchy is mounted" % v1name)
        offered = " ".join(sorted(self.v2_controllers())) or "none"
        return ("the cgroup v2 hierarchy at %s does not offer it (it offers: %s) and no cgroup v1 "
                "hierarchy has %s mounted" % (self.v2.mount, offered, v1name))

    def all_hierarchies(self):
        """Every hierarchy a collection cgroup may have a directory in."""
        seen = []
        for name in ("cpu", "cpuacct", "cpuset", "memory", "blkio", "pids"):
            h = self.v1.get(name)
            if h is not None and h not in seen:
                seen.append(h)
        if self.v2 is not None:
            seen.append(self.v2)
        return seen

    def pid_cgroups(self, pid):
        """/proc/<pid>/cgroup as {'': v2 path, v1 controller: path}."""
        out = {}
        with open(os.path.join(self.proc, str(pid), "cgroup")) as fh:
            for line in fh:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) != 3:
                    continue
                if parts[1] == "":
                    out[""] = parts[2]
                for name in parts[1].split(","):
                    if name:
                        out[name] = parts[2]
        return out

    def path_in(self, hierarchy, pid_cgroups):
        """A process's cgroup path in one hierarchy ('/' based)."""
        if hierarchy.version == 2:
            return pid_cgroups.get("")
        for name in hierarchy.controllers:
            if name in pid_cgroups:
                return pid_cgroups[name]
        return None


# ---------------------------------------------------------------------------
class Member:
    """A cgroup's directory in one hierarchy, with its ancestors from the anchor."""

    def __init__(self, hierarchy, anchor, parent, name):
        self.h = hierarchy
        self.anchor = anchor                     # '/' or the relative_to_pid cgroup
        self.anchor_dir = os.path.normpath(hierarchy.mount + "/" + anchor.strip("/"))
        rel = [p for p in (parent + "/" + name).split("/") if p]
        self.chain = [self.anchor_dir]           # anchor, parent components..., the cgroup
        for part in rel:
            self.chain.append(os.path.join(self.chain[-1], part))
        self.n_parent = len([p for p in parent.split("/") if p])
        self.dir = self.chain[-1]
        self.placed = False
        self.controllers = ()                    # module controllers this member must serve
        self.enabled = ()                        # module controllers whose files it has
        self.limits = {}
        self.pids = []
        self.exists = False
        self.owned = False

    @property
    def version(self):
        return self.h.version

    def rel(self, path):
        """Path relative to the hierarchy root, as /proc/<pid>/cgroup shows it."""
        return "/" + os.path.relpath(path, self.h.mount) if path != self.h.mount else "/"


class Cgroup(Resource):
    """One cgroup: its directories, limits and processes."""

    def __init__(self, layout, name, parent=DEFAULT_PARENT, relative_to_pid=None, state="present",
                 memory_max=None, memory_high=None, memory_swap_max=None, cpus=None,
                 cpu_max=None, cpu_weight=None, pids_max=None, cpuset_cpus=None,
                 cpuset_mems=None, io_max=None, pids=None, kill=False, force=False,
                 state_dir=DEFAULT_STATE_DIR, report_stats=True):
        super().__init__()
        self.report_stats = report_stats  # compose leaves the statistics to cgroup_info
        self.layout = layout
        self.fs = layout.fs
        self.name = cgroup_path("name", name)
        self.parent = cgroup_path("parent", parent, allow_empty=True)
        if state not in ("present", "absent", "info"):
            raise InvalidInput("state", "%r must be present or absent" % (state,))
        self.state = state
        self.relative_to_pid = (layout.process("relative_to_pid", relative_to_pid)
                                if relative_to_pid is not None else None)
        self.kill = bool(kill)
        self.force = bool(force)
        self.state_dir = validate.abspath("state_dir", state_dir)
        want = {}
        want["memory_max"] = check_memory("memory_max", memory_max)
        want["memory_high"] = check_memory("memory_high", memory_high)
        want["memory_swap_max"] = check_memory("memory_swap_max", memory_swap_max)
        if cpus is not None and cpu_max is not None:
            raise InvalidInput("cpus", "give either cpus or cpu_max, not both")
        want["cpu_max"] = (check_cpus("cpus", cpus, layout.ncpus()) if cpus is not None
                           else check_cpu_max("cpu_max", cpu_max, layout.ncpus()))
        want["cpu_weight"] = check_cpu_weight("cpu_weight", cpu_weight)
        want["pids_max"] = check_pids_max("pids_max", pids_max)
        want["cpuset_cpus"] = check_idlist("cpuset_cpus", cpuset_cpus, layout.online("cpu"), "CPUs")
        want["cpuset_mems"] = check_idlist("cpuset_mems", cpuset_mems, layout.online("node"),
                                           "memory nodes")
        want["io_max"] = self._io_max(io_max)
        for key in ("memory_max", "memory_high", "memory_swap_max"):
            want[key] = page_round(want[key], layout.page_size)
        self.want = {k: v for k, v in want.items() if v is not None}
        self.pids = []
        for pid in pids or []:
            pid = layout.process("pids", pid)
            if pid not in self.pids:
                self.pids.append(pid)
        if state == "absent":
            given = sorted(k for k in self.want) + (["pids"] if self.pids else [])
            if given:
                key = "cpus" if given[0] == "cpu_max" and cpus is not None else given[0]
                raise InvalidInput(key, "cannot be set with state=absent")
        elif self.kill:
            raise InvalidInput("kill", "only applies to state=absent")
        self.required = []
        for key in self.want:
            controller = LIMITS[key][0]
            if controller not in self.required:
                self.required.append(controller)
        self._target = None
        self.stopped_first = set()  # pid namespace inodes, see expect_stopped()
        self.siblings_removed = set()  # see expect_stopped()

    def _io_max(self, io_max):
        if io_max is None:
            return None
        if not isinstance(io_max, list):
            raise InvalidInput("io_max", "must be a list of {device, rbps, wbps, riops, wiops}")
        out = {}
        for entry in io_max:
            if not isinstance(entry, dict):
                raise InvalidInput("io_max", "%r is not a dict with device and limits" % (entry,))
            unknown = sorted(set(entry) - set(IO_KEYS) - {"device"})
            if unknown:
                raise InvalidInput("io_max", "unknown key(s) %s (use device, %s)"
                                   % (", ".join(unknown), ", ".join(IO_KEYS)))
            devno = self.layout.block_device("io_max", entry.get("device"))
            if devno in out:
                raise InvalidInput("io_max", "device %s is listed twice" % entry.get("device"))
            limits = {}
            for key in IO_KEYS:
                if entry.get(key) is not None:
                    limits[key] = check_io_rate("io_max", key, entry[key])
            if not limits:
                raise InvalidInput("io_max", "device %s has no limit (give rbps, wbps, riops or wiops)"
                                   % entry.get("device"))
            out[devno] = limits
        return out

    # --- describing errors ------------------------------------------------------
    def describe_error(self, exc):
        if isinstance(exc, OSError) and exc.errno is not None:
            hint = {
                errno.EBUSY: "device or resource busy (cgroup v2 allows no processes in a cgroup that "
                             "enables controllers for its children; or the cgroup is still in use)",
                errno.EINVAL: "invalid argument (the kernel refused the value)",
                errno.ENOENT: "no such file (is the controller enabled for this cgroup?)",
                errno.ESRCH: "no such process (it exited)",
                errno.ENOSPC: "no space (a cgroup v1 cpuset without CPUs or memory nodes)",
                errno.EACCES: "permission denied (needs root, or the cgroup is not delegated)",
                errno.EPERM: "operation not permitted (needs root, or the cgroup is not delegated)",
                errno.ENOTSUP: "not supported by this kernel",
            }.get(exc.errno)
            return hint or os.strerror(exc.errno)
        return str(exc)

    # --- reading ------------------------------------------------------------------
    def _members(self):
        """A Member per hierarchy; ``placed`` marks those a present cgroup must have."""
        layout = self.layout
        pidcg = layout.pid_cgroups(self.relative_to_pid) if self.relative_to_pid else None
        placed = {}
        if self.state == "present":
            for controller in self.required:
                if layout.locate(controller) is None:
                    keys = [k for k in self.want if LIMITS[k][0] == controller]
                    raise PlanError("%s: needs the %s controller, which is not available: %s"
                                    % (keys[0], controller, layout.why_missing(controller)))
            for controller in CONTROLLERS:
                if controller in self.required or controller in DEFAULT_CONTROLLERS:
                    h = layout.locate(controller)
                    if h is not None:
                        placed.setdefault(h, []).append(controller)
            versions = sorted(set(h.version for h in placed))
            if len(versions) > 1:
                raise PlanError(
                    "name: the controllers this cgroup needs are split between cgroup v1 (%s) and "
                    "v2 (%s); mixed placement is not supported"
                    % (", ".join(c for h, cs in placed.items() if h.version == 1 for c in cs),
                       ", ".join(c for h, cs in placed.items() if h.version == 2 for c in cs)))
            for controller in list(c for cs in placed.values() for c in cs):
                for extra in V1_NAMES[controller][1:]:   # cpuacct: cpu usage statistics
                    h = layout.v1.get(extra)
                    if h is not None and h.version == 1 and h not in placed:
                        placed[h] = [controller]
            if not placed:
                if layout.v2 is None:
                    raise PlanError("name: no cgroup hierarchy with cpu, memory or pids is mounted")
                placed[layout.v2] = []
        members = []
        for h in layout.all_hierarchies():
            anchor = "/"
            if pidcg is not None:
                anchor = layout.path_in(h, pidcg)
                if anchor is None:
                    if h in placed:
                        raise PlanError("relative_to_pid: process %d is in no cgroup of the %s "
                                        "hierarchy" % (self.relative_to_pid, h.label))
                    continue
            member = Member(h, anchor, self.parent, self.name)
            if h in placed:
                member.placed = True
                member.controllers = tuple(placed[h])
            members.append(member)
        return members

    def marker(self, path):
        return os.path.join(self.state_dir, "cgroups", path.lstrip("/"), MARKER)

    def is_owned(self, path):
        try:
            with open(self.marker(path)) as fh:
                return int(fh.read().strip()) == self.fs.inode(path)
        except (OSError, ValueError):
            return False

    def procs(self, path):
        text = self.fs.read_or_none(os.path.join(path, "cgroup.procs")) or ""
        return [int(p) for p in text.split()]

    def subtree(self, path):
        """``path`` and its descendants, deepest first."""
        out = []
        for child in self.fs.subdirs(path):
            out += self.subtree(os.path.join(path, child))
        out.append(path)
        return out

    def read(self):
        members = self._members()
        state = {"members": members, "chains": {}}
        for m in members:
            m.exists = self.fs.isdir(m.dir)
            m.owned = m.exists and self.is_owned(m.dir)
            if not m.exists:
                m.enabled = ()
            elif m.version == 2:
                m.enabled = tuple(c for c in CONTROLLERS if c in (self.fs.read_or_none(
                    os.path.join(m.dir, "cgroup.controllers")) or "").split())
            else:
                m.enabled = tuple(c for c in CONTROLLERS if m.h.serves(c))
            if not m.placed:
                m.controllers = m.enabled
            m.limits = self._read_limits(m) if m.exists else {}
            m.pids = self.procs(m.dir) if m.exists else []
        return state

    def _read_limits(self, m):
        """The kernel's limits in module terms, plus raw values the plan needs."""
        r = self.fs.read_or_none
        d = m.dir
        out = {}
        for controller in m.enabled:
            # pids and cpuset have the same files in both versions.
            if controller == "pids":
                text = r(os.path.join(d, "pids.max"))
                if text:
                    out["pids_max"] = _num_or_max(text)
            elif controller == "cpuset":
                for key in ("cpus", "mems"):
                    text = r(os.path.join(d, "cpuset." + key))
                    if text is not None:
                        out["cpuset_" + key] = frozenset(parse_idlist(text))
            elif m.version == 2:
                if controller == "memory":
                    for key, fname in (("memory_max", "memory.max"), ("memory_high", "memory.high"),
                                       ("memory_swap_max", "memory.swap.max")):
                        text = r(os.path.join(d, fname))
                        if text is not None:
                            out[key] = _num_or_max(text)
                elif controller == "cpu":
                    text = r(os.path.join(d, "cpu.max"))
                    if text:
                        quota, period = text.split()
                        out["cpu_max"] = (_num_or_max(quota), int(period))
                    text = r(os.path.join(d, "cpu.weight"))
                    if text:
                        out["cpu_weight"] = int(text)
                elif controller == "io":
                    text = r(os.path.join(d, "io.max"))
                    if text is not None:
                        out["io_max"] = parse_io_v2(text)
            else:
                if controller == "memory":
                    text = r(os.path.join(d, "memory.limit_in_bytes"))
                    if text:
                        out["memory_max"] = _v1_bytes(text)
                    text = r(os.path.join(d, "memory.memsw.limit_in_bytes"))
                    if text:
                        out["_memsw"] = _v1_bytes(text)
                        out["memory_swap_max"] = memsw_to_swap(out.get("memory_max", "max"),
                                                               out["_memsw"])
                elif controller == "cpu" and "cpu" in m.h.controllers:
                    quota = r(os.path.join(d, "cpu.cfs_quota_us"))
                    period = r(os.path.join(d, "cpu.cfs_period_us"))
                    if quota and period:
                        q = int(quota)
                        out["cpu_max"] = ("max" if q < 0 else q, int(period))
                    shares = r(os.path.join(d, "cpu.shares"))
                    if shares:
                        out["_shares"] = int(shares)
                        out["cpu_weight"] = shares_to_weight(int(shares))
                elif controller == "io":
                    io = {}
                    for key, fname in V1_IO_FILES.items():
                        for devno, value in _keyvals(r(os.path.join(d, fname)) or "").items():
                            io.setdefault(devno, dict.fromkeys(IO_KEYS, "max"))[key] = value or "max"
                    out["io_max"] = io
        return out

    def _defaults(self, m, controllers):
        """The limits of a directory right after mkdir (or after enabling a controller)."""
        out = {}
        for controller in controllers:
            if controller == "memory":
                out["memory_max"] = out["memory_swap_max"] = "max"
                if m.version == 2:
                    out["memory_high"] = "max"
                else:
                    out["_memsw"] = "max"
            elif controller == "cpu" and (m.version == 2 or "cpu" in m.h.controllers):
                out["cpu_max"] = ("max", CPU_PERIOD_DEFAULT)
                out["cpu_weight"] = 100 if m.version == 2 else shares_to_weight(1024)
                if m.version == 1:
                    out["_shares"] = 1024
            elif controller == "pids":
                out["pids_max"] = "max"
            elif controller == "io":
                out["io_max"] = {}
            elif controller == "cpuset":
                if m.version == 2:
                    out["cpuset_cpus"] = out["cpuset_mems"] = frozenset()
                else:
                    # a new v1 cpuset gets its cpus and mems written at mkdir (see _plan_dirs)
                    for key in ("cpus", "mems"):
                        out["cpuset_" + key] = (self.want.get("cpuset_" + key)
                                                or self._inherited_cpuset(m, key))
        return out

    def _inherited_cpuset(self, m, key):
        for path in reversed(m.chain[:-1]):
            text = self.fs.read_or_none(os.path.join(path, "cpuset." + key))
            if text is not None and text.strip():
                return frozenset(parse_idlist(text))
        return frozenset()

    # --- planning -----------------------------------------------------------------
    def plan(self, current):
        if self.state == "info":
            return []
        if self.state == "absent":
            return self._plan_absent(current)
        return self._plan_present(current)

    def _not_ours(self, m):
        return PlanError(
            "name: cgroup %s exists but was not created by handbuilt.containers (no ownership "
            "marker under %s); refusing to %s it. Set force: true to %s it anyway."
            % (m.dir, os.path.join(self.state_dir, "cgroups"),
               "delete" if self.state == "absent" else "take over",
               "delete" if self.state == "absent" else "adopt"))

    def _plan_present(self, current):
        members = [m for m in current["members"] if m.placed]
        ops = []
        for m in members:
            if m.exists and not m.owned:
                if not self.force:
                    raise self._not_ours(m)
                self.adopted = True
        if self.adopted:
            self.warnings.append("cgroup %s existed without the handbuilt.containers mark; it was "
                                 "converged and adopted (force: true)." % self.name)
        target = {}
        for m in members:
            ops += self._plan_dirs(m)
            base = self._defaults(m, [c for c in m.controllers if c not in m.enabled])
            base.update(m.limits)
            limit_ops, after = self._plan_limits(m, base)
            ops += limit_ops
            target.update(after)
        for pid in self.pids:
            try:
                where = self.layout.pid_cgroups(pid)
            except OSError:
                raise PlanError("pids: process %d does not exist" % pid)
            for m in members:
                if self.layout.path_in(m.h, where) != m.rel(m.dir):
                    if m.version == 2 and m.exists and (self.fs.read_or_none(
                            os.path.join(m.dir, "cgroup.subtree_control")) or "").strip():
                        raise PlanError(
                            "pids: cgroup %s enables controllers for its child cgroups, so under "
                            "cgroup v2 it cannot hold processes; put them in a child cgroup" % m.dir)
                    path = os.path.join(m.dir, "cgroup.procs")
                    ops.append(Op(echo_cmd(path, pid), self._attach, path, pid))
        self._target = target
        return ops

    def _plan_dirs(self, m):
        """mkdir along the chain; on v2 enable the controllers in each ancestor first."""
        ops = []
        fs = self.fs
        if not fs.isdir(m.anchor_dir):
            raise PlanError("parent: the anchor cgroup %s does not exist" % m.anchor_dir)
        if m.version == 2:
            self._check_delegated(m)
        new = False
        for i, path in enumerate(m.chain):
            if i > 0:
                if new or not fs.isdir(path):
                    new = True
                    ops.append(Op(render(["mkdir", path]), fs.mkdir, path))
                    if m.version == 1 and "cpuset" in m.h.controllers:
                        # a new v1 cpuset has no CPUs or memory nodes: no process could join it
                        for key in ("cpus", "mems"):
                            value = path == m.dir and self.want.get("cpuset_" + key)
                            fname = os.path.join(path, "cpuset." + key)
                            text = format_idlist(value or self._inherited_cpuset(m, key))
                            ops.append(Op(echo_cmd(fname, text), self._write, fname, text))
                    ops.append(self._mark_op(path))
                elif path == m.dir and not m.owned:
                    ops.append(self._mark_op(path))  # adopted (force)
            if m.version == 2 and path != m.dir and m.controllers:
                have = set() if new else set(
                    (fs.read_or_none(os.path.join(path, "cgroup.subtree_control")) or "").split())
                missing = [c for c in m.controllers if c not in have]
                if missing and not new and path != m.h.mount and self.procs(path):
                    needed = [c for c in missing if c in self.required]
                    if not needed:   # only default controllers: the cgroup does without them
                        m.controllers = tuple(c for c in m.controllers if c not in missing)
                        missing = []
                    else:
                        raise PlanError(
                            "%s: cgroup %s holds processes, so cgroup v2 cannot enable %s for "
                            "its children (the 'no internal processes' rule); choose a parent "
                            "cgroup without processes (for example the default parent at the "
                            "hierarchy root, or a delegated systemd unit's subtree)"
                            % ("relative_to_pid" if i == 0 and self.relative_to_pid else "parent",
                               path, ", ".join(needed)))
                if missing:
                    fname = os.path.join(path, "cgroup.subtree_control")
                    text = " ".join("+" + c for c in missing)
                    ops.append(Op(echo_cmd(fname, text), self._write, fname, text))
        return ops

    def _check_delegated(self, m):
        """v2: a controller must be offered to the anchor by its parent."""
        if m.anchor_dir == m.h.mount:
            offered = self.layout.v2_controllers()
        else:
            offered = set((self.fs.read_or_none(os.path.join(m.anchor_dir, "cgroup.controllers"))
                           or "").split())
        for controller in list(m.controllers):
            if controller not in offered:
                if controller in self.required:
                    keys = [k for k in self.want if LIMITS[k][0] == controller]
                    raise PlanError(
                        "%s: the %s controller is not delegated to %s (its parent does not list it "
                        "in cgroup.subtree_control; offered: %s)"
                        % (keys[0], controller, m.anchor_dir, " ".join(sorted(offered)) or "none"))
                m.controllers = tuple(c for c in m.controllers if c != controller)

    def _mark_op(self, path):
        return Op("stat -c %%i %s > %s" % (shell_quote(path), shell_quote(self.marker(path))),
                  self._mark, path)

    def _plan_limits(self, m, cur):
        """Ops writing the declared limits that differ, and the limits after them."""
        want = self.want
        d = m.dir
        ops = []
        after = dict(cur)

        def write(fname, value):
            path = os.path.join(d, fname)
            ops.append(Op(echo_cmd(path, value), self._write, path, str(value)))

        for controller in m.controllers:
            v2 = m.version == 2
            if controller == "memory":
                if v2:
                    for key, fname in (("memory_max", "memory.max"), ("memory_high", "memory.high"),
                                       ("memory_swap_max", "memory.swap.max")):
                        if key in want and cur.get(key) != want[key]:
                            write(fname, want[key])
                            after[key] = want[key]
                else:
                    if "memory_high" in want:
                        raise PlanError("memory_high: cgroup v1 has no equivalent of memory.high "
                                        "(it needs cgroup v2)")
                    ops += self._plan_v1_memory(m, cur, after)
            elif controller == "cpu" and (v2 or "cpu" in m.h.controllers):
                if "cpu_max" in want:
                    quota, period = want["cpu_max"]
                    cq, cp = cur.get("cpu_max", ("max", CPU_PERIOD_DEFAULT))
                    period = period or cp
                    if (quota, period) != (cq, cp):
                        if v2:
                            write("cpu.max", "max" if quota == "max" and period == cp
                                  else "%s %d" % (quota, period))
                        else:
                            if period != cp:
                                write("cpu.cfs_period_us", period)
                            if quota != cq:
                                write("cpu.cfs_quota_us", -1 if quota == "max" else quota)
                        after["cpu_max"] = (quota, period)
                if "cpu_weight" in want:
                    if v2 and cur.get("cpu_weight") != want["cpu_weight"]:
                        write("cpu.weight", want["cpu_weight"])
                    elif not v2 and cur.get("_shares") != weight_to_shares(want["cpu_weight"]):
                        write("cpu.shares", weight_to_shares(want["cpu_weight"]))
                        after["_shares"] = weight_to_shares(want["cpu_weight"])
                    after["cpu_weight"] = want["cpu_weight"]
            elif controller == "pids":
                if "pids_max" in want and cur.get("pids_max") != want["pids_max"]:
                    write("pids.max", want["pids_max"])
                    after["pids_max"] = want["pids_max"]
            elif controller == "cpuset":
                for key in ("cpuset_cpus", "cpuset_mems"):
                    if key in want and cur.get(key) != want[key]:
                        write(key.replace("_", "."), format_idlist(want[key]))
                        after[key] = want[key]
            elif controller == "io" and "io_max" in want:
                io = {dev: dict(limits) for dev, limits in cur.get("io_max", {}).items()}
                for devno, limits in sorted(want["io_max"].items()):
                    have = io.get(devno, dict.fromkeys(IO_KEYS, "max"))
                    changed = [k for k in IO_KEYS if k in limits and have.get(k) != limits[k]]
                    if not changed:
                        continue
                    if v2:
                        write("io.max", devno + " " + " ".join(
                            "%s=%s" % (k, limits[k]) for k in IO_KEYS if k in limits))
                    else:
                        for key in changed:
                            write(V1_IO_FILES[key], "%s %s" % (devno, 0 if limits[key] == "max"
                                                               else limits[key]))
                    have = dict(have, **limits)
                    if all(v == "max" for v in have.values()):
                        io.pop(devno, None)
                    else:
                        io[devno] = have
                after["io_max"] = io
        return ops, after

    def _plan_v1_memory(self, m, cur, after):
        """v1 keeps memory+swap in one limit that must never be below memory's."""
        want = self.want
        if "memory_max" not in want and "memory_swap_max" not in want:
            return []
        limit, memsw = cur.get("memory_max", "max"), cur.get("_memsw")
        if "memory_swap_max" in want and memsw is None:
            raise PlanError("memory_swap_max: this kernel has no cgroup v1 swap accounting "
                            "(no memory.memsw.limit_in_bytes; boot with swapaccount=1)")
        new_limit = want.get("memory_max", limit)
        if "memory_swap_max" in want:
            swap = want["memory_swap_max"]
        else:
            swap = memsw_to_swap(limit, memsw) if memsw is not None else None
        new_memsw = memsw
        if swap is not None:
            new_memsw = "max" if "max" in (new_limit, swap) else new_limit + swap
        ops = []
        d = m.dir

        def op(fname, value):
            path = os.path.join(d, fname)
            value = -1 if value == "max" else value
            return Op(echo_cmd(path, value), self._write, path, str(value))

        limit_op = op("memory.limit_in_bytes", new_limit) if new_limit != limit else None
        memsw_op = op("memory.memsw.limit_in_bytes", new_memsw) if new_memsw != memsw else None
        # memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every step.
        order = [memsw_op, limit_op] if memsw_op and _gt(new_memsw, memsw) else [limit_op, memsw_op]
        ops = [o for o in order if o is not None]
        after["memory_max"] = new_limit
        if memsw is not None:
            after["_memsw"] = new_memsw
            after["memory_swap_max"] = memsw_to_swap(new_limit, new_memsw)
        return ops

    def expect_stopped(self, pid_namespaces, siblings=()):
        """Check mode of a run that stops these containers first (compose's teardown):
        their processes - every member of their pid namespaces - will be gone, and the
        ``siblings`` (cgroups of the same parent) removed before this one, so the
        prediction leaves them out. A real run never calls it: it finds them gone."""
        self.stopped_first = set(pid_namespaces)
        self.siblings_removed = set(siblings)

    def _stopping_anyway(self, pid):
        try:
            return os.stat("/proc/%d/ns/pid" % pid).st_ino in self.stopped_first
        except OSError:
            return True  # gone already

    def _plan_absent(self, current):
        members = [m for m in current["members"] if m.exists]
        ops = []
        for m in members:
            if not m.owned and not self.force:
                raise self._not_ours(m)
        dirs = {m: self.subtree(m.dir) for m in members}
        busy = sorted(set(p for m in members for path in dirs[m] for p in self.procs(path)
                          if not (self.stopped_first and self._stopping_anyway(p))))
        if busy and not self.kill:
            raise PlanError("name: cgroup %s still holds processes %s; set kill: true to kill them "
                            "(or move them out first)"
                            % (self.name, ", ".join(str(p) for p in busy[:20])))
        if busy:
            what = "; ".join(
                echo_cmd(os.path.join(m.dir, "cgroup.kill"), 1)
                if m.version == 2 and self.fs.exists(os.path.join(m.dir, "cgroup.kill"))
                else "kill -KILL $(cat %s)" % shell_quote(os.path.join(m.dir, "cgroup.procs"))
                for m in members)
            ops.append(Op(what, self._kill, members, dirs))
        for m in members:
            for path in dirs[m]:
                ops.append(Op(render(["rmdir", path]), self._rmdir, path))
        for m in current["members"]:
            mdir = os.path.dirname(self.marker(m.dir))
            if os.path.isdir(mdir):
                ops.append(Op(render(["rm", "-rf", mdir]), self._unmark, mdir))
        # Components of the parent that the collection created, once they become empty.
        for m in members:
            removed = m.chain[m.n_parent + 1]
            if removed != m.dir:
                continue  # a nested name: its own ancestors stay (they may be declared cgroups)
            for path in reversed(m.chain[1:m.n_parent + 1]):
                left = set(self.fs.subdirs(path))
                if removed == m.dir:
                    left -= self.siblings_removed
                if (left != {os.path.basename(removed)} or self.procs(path)
                        or not self.is_owned(path)):
                    break
                ops.append(Op(render(["rmdir", path]), self._rmdir, path))
                mdir = os.path.dirname(self.marker(path))
                ops.append(Op(render(["rm", "-rf", mdir]), self._unmark, mdir))
                removed = path
        return ops

    # --- applying -------------------------------------------------------------------
    def _write(self, path, value):
        self.fs.write(path, value)

    def _attach(self, path, pid):
        self.fs.write(path, str(pid))

    def _mark(self, path):
        marker = self.marker(path)
        os.makedirs(os.path.dirname(marker), 0o755, exist_ok=True)
        with open(marker, "w") as fh:
            fh.write("%d\n" % self.fs.inode(path))

    def _unmark(self, mdir):
        for root, dirs, files in os.walk(mdir, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        if os.path.isdir(mdir):
            os.rmdir(mdir)
        top = os.path.join(self.state_dir, "cgroups")
        path = os.path.dirname(mdir)
        while len(path) >= len(top) and path.startswith(top):
            try:
                os.rmdir(path)
            except OSError:
                break
            path = os.path.dirname(path)

    def _kill(self, members, dirs):
        for m in members:
            if m.version == 2 and self.fs.exists(os.path.join(m.dir, "cgroup.kill")):
                self.fs.write(os.path.join(m.dir, "cgroup.kill"), "1")
        deadline = time.monotonic() + KILL_TIMEOUT
        while True:
            left = sorted(set(p for m in members for path in dirs[m] for p in self.procs(path)))
            if not left:
                return
            if time.monotonic() > deadline:
                raise PlanError("processes %s survived SIGKILL for %d s" % (left, KILL_TIMEOUT))
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def _rmdir(self, path):
        deadline = time.monotonic() + KILL_TIMEOUT
        while True:
            try:
                self.fs.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:  # EBUSY while killed processes finish exiting
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # --- describing -------------------------------------------------------------------
    def view(self, current):
        members = [m for m in current["members"] if m.exists]
        if not members:
            return dict(ABSENT)
        limits = {}
        for m in members:
            limits.update(m.limits)
        pids = sorted(set(p for m in members for p in m.pids))
        return {"state": "present", "name": self.name, "owned": all(m.owned for m in members),
                "limits": limits_view(limits), "pids": pids}

    def predict(self, before):
        if self.state == "absent":
            return dict(ABSENT)
        limits = dict(before.get("limits", {}))
        limits.update(limits_view(self._target or {}))
        after = dict(before, state="present", name=self.name, owned=True, limits=limits)
        after["pids"] = sorted(set(before.get("pids", [])) | set(self.pids))
        return after

    def facts(self, current):
        return {"cgroup": self.describe(current, stats=self.report_stats)}

    def describe(self, current, stats=True):
        """The cgroup as the kernel reports it: paths, limits, stats, processes."""
        members = [m for m in current["members"] if m.exists]
        if not members:
            return None
        view = self.view(current)
        paths = {}
        for m in members:
            names = CONTROLLERS if m.version == 2 else [n for n in m.h.controllers if n in MANAGED_V1]
            for n in names:
                paths["io" if n == "blkio" else n] = m.dir
        v2 = [m for m in members if m.version == 2]
        out = {"name": self.name, "parent": self.parent, "version": members[0].version,
               "path": v2[0].dir if v2 else paths.get("memory", members[0].dir), "paths": paths,
               "owned": view["owned"], "controllers": sorted(set(
                   c for m in members for c in m.enabled)),
               "limits": view["limits"], "pids": view["pids"]}
        if stats:
            out["stats"] = self.stats(members)
        return out

    def stats(self, members):
        r = self.fs.read_or_none
        out = {}
        for m in members:
            d = m.dir
            if m.version == 2:
                kv = _keyvals(r(os.path.join(d, "memory.events")) or "")
                if r(os.path.join(d, "memory.current")) is not None:
                    out["memory"] = {
                        "current": _int_or_none(r(os.path.join(d, "memory.current"))),
                        "peak": _int_or_none(r(os.path.join(d, "memory.peak"))),
                        "oom": kv.get("oom", 0), "oom_kill": kv.get("oom_kill", 0),
                        "max_events": kv.get("max", 0), "high_events": kv.get("high", 0)}
                if r(os.path.join(d, "pids.current")) is not None:
                    out["pids"] = {"current": _int_or_none(r(os.path.join(d, "pids.current"))),
                                   "peak": _int_or_none(r(os.path.join(d, "pids.peak"))),
                                   "max_events": _keyvals(r(os.path.join(d, "pids.events")) or "")
                                   .get("max", 0)}
                kv = _keyvals(r(os.path.join(d, "cpu.stat")) or "")
                if kv:
                    out["cpu"] = {"usage_usec": kv.get("usage_usec"), "user_usec": kv.get("user_usec"),
                                  "system_usec": kv.get("system_usec"),
                                  "nr_periods": kv.get("nr_periods"),
                                  "nr_throttled": kv.get("nr_throttled"),
                                  "throttled_usec": kv.get("throttled_usec")}
                continue
            names = m.h.controllers
            if "memory" in names:
                oom = _keyvals(r(os.path.join(d, "memory.oom_control")) or "")
                out["memory"] = {
                    "current": _int_or_none(r(os.path.join(d, "memory.usage_in_bytes"))),
                    "peak": _int_or_none(r(os.path.join(d, "memory.max_usage_in_bytes"))),
                    "oom": None, "oom_kill": oom.get("oom_kill", 0),
                    # the limit hit first counts: memory+swap when it equals memory's
                    "max_events": max(_int_or_none(r(os.path.join(d, "memory.failcnt"))) or 0,
                                      _int_or_none(r(os.path.join(d, "memory.memsw.failcnt"))) or 0),
                    "high_events": None, "under_oom": bool(oom.get("under_oom", 0))}
            if "pids" in names:
                out["pids"] = {"current": _int_or_none(r(os.path.join(d, "pids.current"))),
                               "peak": _int_or_none(r(os.path.join(d, "pids.peak"))),
                               "max_events": _keyvals(r(os.path.join(d, "pids.events")) or "")
                               .get("max", 0)}
            cpu = out.setdefault("cpu", {})
            if "cpuacct" in names:
                usage = _int_or_none(r(os.path.join(d, "cpuacct.usage")))
                ticks = _keyvals(r(os.path.join(d, "cpuacct.stat")) or "")
                hz = os.sysconf("SC_CLK_TCK")
                cpu.update(usage_usec=usage // 1000 if usage is not None else None,
                           user_usec=ticks["user"] * 1000000 // hz if "user" in ticks else None,
                           system_usec=ticks["system"] * 1000000 // hz if "system" in ticks else None)
            if "cpu" in names:
                kv = _keyvals(r(os.path.join(d, "cpu.stat")) or "")
                cpu.update(nr_periods=kv.get("nr_periods"), nr_throttled=kv.get("nr_throttled"),
                           throttled_usec=kv["throttled_time"] // 1000 if "throttled_time" in kv
                           else None)
            if not cpu:
                out.pop("cpu")
        return out


def _int_or_none(text):
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


def memsw_to_swap(limit, memsw):
    """v1 memory+swap limit -> the swap part (what v2 calls memory.swap.max)."""
    if memsw is None:
        return None
    if memsw == "max" or limit == "max":
        return "max" if memsw == "max" else memsw
    return max(memsw - limit, 0)


def parse_io_v2(text):
    out = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        limits = dict.fromkeys(IO_KEYS, "max")
        for word in words[1:]:
            key, dummy, value = word.partition("=")
            if key in limits:
                limits[key] = _num_or_max(value)
        out[words[0]] = limits
    return out


def limits_view(limits):
    """Internal limits -> what the module returns (cpu_max as the kernel's 'QUOTA PERIOD')."""
    out = {}
    for key, value in limits.items():
        if key.startswith("_"):
            continue
        if key == "cpu_max":
            quota, period = value
            out["cpu_max"] = "%s %d" % (quota, period)
            out["cpus"] = "max" if quota == "max" else round(quota / float(period), 4)
        elif key.startswith("cpuset_"):
            out[key] = format_idlist(value)
        elif key == "io_max":
            out[key] = {dev: dict(v) for dev, v in sorted(value.items())}
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------
class CgroupInfo(Resource):
    """Read-only report of one cgroup, or of every cgroup beneath the parent."""

    needs_root = False

    def __init__(self, layout, name=None, parent=DEFAULT_PARENT, relative_to_pid=None,
                 state_dir=DEFAULT_STATE_DIR):
        super().__init__()
        self.layout = layout
        self.name = cgroup_path("name", name) if name else None
        self.parent = cgroup_path("parent", parent, allow_empty=True)
        self.relative_to_pid = relative_to_pid
        self.state_dir = state_dir
        # Validates relative_to_pid and state_dir up front.
        self._probe = Cgroup(layout, self.name or "probe", parent=self.parent, state="info",
                             relative_to_pid=relative_to_pid, state_dir=state_dir)

    def cgroup(self, name):
        return Cgroup(self.layout, name, parent=self.parent, state="info",
                      relative_to_pid=self._probe.relative_to_pid, state_dir=self.state_dir)

    def names(self):
        """Every cgroup path beneath the parent, in any hierarchy."""
        found = set()
        for m in self._probe._members():
            base = m.chain[m.n_parent]

            def walk(path, rel):
                for child in self.layout.fs.subdirs(path):
                    name = rel + "/" + child if rel else child
                    found.add(name)
                    walk(os.path.join(path, child), name)
            walk(base, "")
        return sorted(found)

    def read(self):
        names = [self.name] if self.name else self.names()
        out = []
        for name in names:
            cg = self.cgroup(name)
            described = cg.describe(cg.read())
            if described is not None:
                out.append(described)
        return out

    def plan(self, current):
        return []

    def view(self, current):
        return {"cgroups": [c["name"] for c in current]}

    def predict(self, before):
        return before

    def facts(self, current):
        result = {"cgroups": current}
        if self.name:
            result["cgroup"] = current[0] if current else None
        return result
