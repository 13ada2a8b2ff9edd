# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Containers: a process in its own namespaces, pivot_rooted into a rootfs.

The model (``Container``) follows the collection's read -> plan -> apply
cycle. Starting is delegated to a small supervisor, ``_shim.py``, copied into
the container's state directory: it must outlive the module (see its
docstring). Everything the module needs to find, verify and stop the process
again lives under ``<state_dir>/containers/<name>/``:

- ``config.json`` the normalised declaration (its hash decides restarts),
- ``state.json``  pid and start time (field 22 of /proc/<pid>/stat, so a
  reused pid is never mistaken for the container), the shim's pid, namespace
  inodes, the rootfs identity and the config hash,
- ``exit.json``   written by the shim when the container exits,
- ``log``         the container's stdout/stderr and the shim's messages,
- ``shim.py``     the supervisor that runs this container.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from ansible_collections.handbuilt.containers.plugins.module_utils import _shim as shim
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import (
    Op,
    PlanError,
    render,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import Resource, wait_until
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import (
    InvalidInput,
    abspath,
)

NETNS_DIR = "/run/netns"
CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHIM_ENV = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
DEFAULT_NAMESPACES = ("pid", "mount", "uts", "ipc")
KNOWN_NAMESPACES = ("pid", "mount", "uts", "ipc", "net", "cgroup", "user")
DEFAULT_USER_MAP = "0 100000 65536"
INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/tini")
START_TIMEOUT = 30

CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAP_NUMBER = {name: number for number, name in enumerate(CAPABILITIES)}
# Docker's default set (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                       "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                       "AUDIT_WRITE")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_KEY_RE = re.compile(r"^[^=\0]+$")


# --- validation ---------------------------------------------------------------
def container_name(param, name):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(param, "%r must start with a letter or digit and contain only letters, "
                           "digits, '_', '.' and '-'" % (name,))
    if len(name) > 64:
        raise InvalidInput(param, "%r is longer than 64 bytes" % name)
    return name


def hostname(param, value):
    if not isinstance(value, str) or not value:
        raise InvalidInput(param, "must be a non-empty string")
    if len(value.encode("utf-8")) > 64:
        raise InvalidInput(param, "%r is %d bytes; a hostname is at most 64 bytes (HOST_NAME_MAX)"
                           % (value, len(value.encode("utf-8"))))
    if "/" in value or any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidInput(param, "%r must not contain '/', spaces or control characters" % value)
    return value


def capabilities(param, values):
    """Capability names (CHOWN, cap_chown, ALL) -> sorted capability numbers."""
    if values is None:
        values = DOCKER_DEFAULT_CAPS
    result = set()
    for value in values:
        name = str(value).strip().upper()
        if name.startswith("CAP_"):
            name = name[4:]
        if name == "ALL":
            result.update(range(min(len(CAPABILITIES) - 1, shim.cap_last_cap()) + 1))
            continue
        if name not in CAP_NUMBER:
            raise InvalidInput(param, "%r is not a Linux capability (known: %s)"
                               % (value, ", ".join(CAPABILITIES)))
        result.add(CAP_NUMBER[name])
    return sorted(result)


def cap_names(numbers):
    return [CAPABILITIES[n] for n in numbers]


def cap_mask(numbers):
    mask = 0
    for n in numbers:
        mask |= 1 << n
    return mask


def command(param, argv):
    if not isinstance(argv, list) or not argv or not str(argv[0]).strip():
        raise InvalidInput(param, "must be a non-empty list (an argv, e.g. [sleep, infinity])")
    for word in argv:
        if "\0" in str(word):
            raise InvalidInput(param, "%r contains a NUL byte" % (word,))
    return [str(w) for w in argv]


def environment(param, env):
    result = {}
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
            raise InvalidInput(param, "%r is not a valid variable name (no '=' or NUL)" % (key,))
        if value is None:
            value = ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        if "\0" in value:
            raise InvalidInput(param, "the value of %s contains a NUL byte" % key)
        result[key] = value
    return result


def signal_number(param, value):
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().upper()
        if text.isdigit():
            number = int(text)
        else:
            if not text.startswith("SIG"):
                text = "SIG" + text
            try:
                number = int(signal.Signals[text])
            except KeyError:
                raise InvalidInput(param, "%r is not a signal name" % (value,))
    if not 1 <= number < signal.NSIG:
        raise InvalidInput(param, "%r is not a valid signal number" % (value,))
    return number


def id_map(param, values):
    """uid_map/gid_map lines: 'inside outside count' strings or dicts."""
    lines = []
    for value in values:
        if isinstance(value, dict):
            try:
                words = [value["container_id"], value["host_id"], value.get("size", 1)]
            except KeyError:
                raise InvalidInput(param, "%r needs container_id, host_id and size" % (value,))
        else:
            words = str(value).split()
        try:
            numbers = [int(w) for w in words]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) != 3 or min(numbers) < 0 or numbers[2] == 0:
            raise InvalidInput(param, "%r is not 'CONTAINER_ID HOST_ID SIZE'" % (value,))
        lines.append("%d %d %d" % tuple(numbers))
    if not lines or len(lines) > 340:
        raise InvalidInput(param, "must hold between 1 and 340 ranges")
    return "\n".join(lines) + "\n"


def cgroup_roots():
    """Mount points of every cgroup hierarchy (v1 controllers and v2)."""
    roots = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                sep = fields.index("-")
                if fields[sep + 1] in ("cgroup", "cgroup2"):
                    roots.append(fields[4])
    except (OSError, ValueError):
        pass
    return roots


def cgroup_dirs(param, value, check_mode, warnings):
    """Absolute cgroup directories from the ``cgroup`` parameter.

    Absolute paths must lie under /sys/fs/cgroup (on cgroup v1 list one per
    controller, e.g. /sys/fs/cgroup/memory/web and /sys/fs/cgroup/pids/web). A
    relative path such as ``handbuilt/web`` means that cgroup in every mounted
    hierarchy where it exists.
    """
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    result = []
    for item in values:
        item = str(item).strip()
        if not item:
            raise InvalidInput(param, "an empty cgroup path")
        if item.startswith("/"):
            path = abspath(param, item)
            if not path.startswith(CGROUP_ROOT + "/"):
                raise InvalidInput(param, "%r must be a cgroup directory under %s (or a path "
                                   "relative to each hierarchy)" % (item, CGROUP_ROOT))
            candidates = [path]
        else:
            if ".." in item.split("/"):
                raise InvalidInput(param, "%r must not contain '..'" % item)
            candidates = [os.path.join(root, item.strip("/")) for root in cgroup_roots()
                          if os.path.isdir(os.path.join(root, item.strip("/")))]
            if not candidates:
                if check_mode:
                    warnings.append("cgroup %s does not exist in any hierarchy (yet)" % item)
                    continue
                raise InvalidInput(param, "cgroup %r does not exist in any mounted hierarchy" % item)
        for path in candidates:
            if not os.path.isdir(path):
                if check_mode:
                    warnings.append("cgroup %s does not exist (yet)" % path)
                else:
                    raise InvalidInput(param, "cgroup %s does not exist (create it first, e.g. "
                                       "with the cgroup module)" % path)
            elif not os.path.exists(os.path.join(path, "cgroup.procs")):
                raise InvalidInput(param, "%s is not a cgroup directory (no cgroup.procs)" % path)
            if path not in result:
                result.append(path)
    return result


# --- reading processes ----------------------------------------------------------
def parse_stat(data):
    """(state letter, start time) from the text of /proc/<pid>/stat.

    The command name (field 2) may hold spaces and parentheses: the fields are
    read after the last ')'; the state is field 3 and the start time field 22.
    """
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def proc_stat(pid):
    """(state letter, start time in clock ticks) of a process, or None."""
    try:
        with open("/proc/%d/stat" % int(pid)) as fh:
            data = fh.read()
    except (OSError, ValueError, TypeError):
        return None
    return parse_stat(data)


def is_alive(pid, starttime):
    """The process ``pid`` started at ``starttime`` exists and is not a zombie."""
    if not pid:
        return False
    stat = proc_stat(pid)
    return stat is not None and stat[1] == starttime and stat[0] not in ("Z", "X")


def boot_time():
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return int(line.split()[1])
    return 0


def started_at(starttime):
    """ISO-8601 wall clock time of a start time in clock ticks since boot."""
    if starttime is None:
        return None
    epoch = boot_time() + starttime / os.sysconf("SC_CLK_TCK")
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(epoch))


def ns_inodes(pid):
    result = {}
    for name, fname in shim.NS_FILES.items():
        try:
            result[name] = os.stat("/proc/%d/ns/%s" % (pid, fname)).st_ino
        except OSError:
            pass
    return result


def in_cgroup(pid, directory):
    try:
        with open(os.path.join(directory, "cgroup.procs")) as fh:
            return str(pid) in fh.read().split()
    except OSError:
        return False


def cgroup_limits(directory):
    """What a cgroup limits, from whichever files this hierarchy has (v1 or v2)."""
    names = ("memory.limit_in_bytes", "memory.max", "memory.memsw.limit_in_bytes", "memory.swap.max",
             "memory.usage_in_bytes", "memory.current", "cpu.max", "cpu.cfs_quota_us",
             "cpu.cfs_period_us", "cpu.shares", "cpu.weight", "pids.max", "pids.current",
             "cpuset.cpus")
    result = {}
    for name in names:
        try:
            with open(os.path.join(directory, name)) as fh:
                result[name] = fh.read().strip()
        except OSError:
            pass
    return result


def addresses(pid):
    """Addresses per interface (lo left out) in the container's network namespace.

    Read through netlink.py from /proc/<pid>/ns/net; None when the container
    shares the host's network namespace or pyroute2 is missing.
    """
    try:
        if os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat("/proc/self/ns/net").st_ino:
            return None
    except OSError:
        return None
    try:
        from ansible_collections.handbuilt.containers.plugins.module_utils import netlink
    except ImportError:
        return None
    if not netlink.HAS_PYROUTE2:
        return None
    nl = netlink.Netlink(netns_dir="/proc/%d/ns" % pid)
    try:
        ipr = nl.ipr("net")
        result = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name == "lo":
                continue
            result[name] = netlink.link_addresses(ipr, link["index"])
        return result
    except Exception:  # the namespace vanished meanwhile: report nothing
        return None
    finally:
        nl.close()


# --- state on disk --------------------------------------------------------------
def containers_dir(state_dir):
    return os.path.join(state_dir, "containers")


def _load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _write_json(path, obj, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
    os.rename(tmp, path)


def shim_source():
    """The supervisor's source, to write next to the container's state."""
    loader = getattr(shim, "__loader__", None)
    source = None
    if loader is not None and hasattr(loader, "get_source"):
        try:
            source = loader.get_source(shim.__name__)
        except Exception:
            source = None
    if not source:
        with open(shim.__file__) as fh:
            source = fh.read()
    return source


class Record:
    """What the state directory says about one container, checked against /proc."""

    def __init__(self, state_dir, name):
        self.name = name
        self.dir = os.path.join(containers_dir(state_dir), name)
        self.config = _load(os.path.join(self.dir, "config.json"))
        self.state = _load(os.path.join(self.dir, "state.json")) or {}
        self.exit = _load(os.path.join(self.dir, "exit.json"))
        self.exists = os.path.isdir(self.dir)
        self.pid = self.state.get("pid")
        self.alive = is_alive(self.pid, self.state.get("starttime"))

    @property
    def status(self):
        if not self.exists:
            return "absent"
        return "running" if self.alive else "exited"

    def shim_alive(self):
        return is_alive(self.state.get("shim_pid"), self.state.get("shim_starttime"))

    def describe(self, live=True):
        """The container as the module and container_info return it.

        ``live=False`` leaves out the addresses and the cgroup files' figures
        (a netlink dump and a dozen reads per container): compose knows the
        addresses and reports the cgroup beside each container.
        """
        cfg = self.config or {}
        result = dict(
            name=self.name, state=self.status, pid=self.pid if self.alive else None,
            started_at=self.state.get("started_at"), rootfs=cfg.get("rootfs"),
            command=cfg.get("command"), hostname=cfg.get("hostname"), netns=cfg.get("netns"),
            cgroups=cfg.get("cgroups", []), namespaces={},
            capabilities=cap_names(cfg.get("capabilities", [])),
            config_hash=self.state.get("config_hash"), state_dir=self.dir,
            log=os.path.join(self.dir, "log"), exit_code=None, addresses=None, limits={},
        )
        if self.alive:
            result["namespaces"] = ns_inodes(self.pid)
        elif self.exit:
            result["exit_code"] = self.exit.get("exit_code")
        if not live:
            del result["addresses"], result["limits"]
            return result
        if self.alive:
            result["addresses"] = addresses(self.pid)
        result["limits"] = {d: cgroup_limits(d) for d in result["cgroups"]}
        return result


# --- starting many -----------------------------------------------------------------
class Launcher:
    """One ``shim.py launch`` process that starts every container of a compose run.

    Starting a supervisor costs a Python start-up (~25 ms of CPU here), more than
    the kernel work of a container; forked from one launcher, each costs a fork.
    Thread-safe: compose starts containers from a thread pool. ``close()`` ends it.
    """

    def __init__(self):
        self._sock = None
        self._proc = None
        self._lock = threading.Lock()

    def start(self, shim_path, state_dir, report_fd, log_fd):
        with self._lock:
            if self._sock is None:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                with theirs:
                    # Not run_command: the supervisor outlives the module.
                    # pylint: disable-next=ansible-bad-function
                    self._proc = subprocess.Popen(
                        [sys.executable, "-S", shim_path, "launch", str(theirs.fileno())],
                        pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True, cwd="/", env=SHIM_ENV)
                self._sock = ours
            # A launcher that died drops the fds it had: the caller sees EOF, no report.
            socket.send_fds(self._sock, [state_dir.encode()], [report_fd, log_fd])

    def close(self):
        with self._lock:
            if self._sock is not None:
                self._sock.close()  # EOF: the launcher exits
                self._sock = None
                _reap(self._proc)


# --- the model ------------------------------------------------------------------
class Container(Resource):
    """A container: started, stopped or absent."""

    def __init__(self, params, check_mode=False, report_live=True, launcher=None):
        super().__init__()
        p = params
        self.check_mode = check_mode
        self.report_live = report_live  # see Record.describe
        self.launcher = launcher  # compose's: one Python start-up for all its containers
        self.name = container_name("name", p["name"])
        self.state_dir = p["state_dir"]
        self.desired = p.get("state") or "started"
        self.stop_signal = signal_number("stop_signal", p.get("stop_signal") or "SIGTERM")
        timeout = p.get("stop_timeout")
        if timeout is None:
            timeout = 10
        if timeout < 0:
            raise InvalidInput("stop_timeout", "%r must not be negative" % timeout)
        self.stop_timeout = timeout
        self.restart = p.get("restart", True)
        self.config = self._config(p) if self.desired == "started" else None
        self.config_hash = self._hash(self.config) if self.config else None

    # --- declaration ---------------------------------------------------------
    def _config(self, p):
        if not p.get("rootfs"):
            raise InvalidInput("rootfs", "is required with state=started")
        rootfs = abspath("rootfs", p["rootfs"], forbid=("/",))
        if not os.path.exists(rootfs):
            if not self.check_mode:
                raise InvalidInput("rootfs", "%s does not exist" % rootfs)
            self.warnings.append("rootfs %s does not exist (yet)" % rootfs)
        elif not os.path.isdir(rootfs):
            raise InvalidInput("rootfs", "%s is not a directory" % rootfs)
        argv = command("command", p.get("command"))

        namespaces = p.get("namespaces")
        namespaces = list(DEFAULT_NAMESPACES) if namespaces is None else [str(n).lower() for n in namespaces]
        for ns in namespaces:
            if ns not in KNOWN_NAMESPACES:
                raise InvalidInput("namespaces", "%r is not a namespace (known: %s)"
                                   % (ns, ", ".join(KNOWN_NAMESPACES)))
        if "mount" not in namespaces:
            raise InvalidInput("namespaces", "must include 'mount': pivot_root into the rootfs "
                               "needs the container's own mount namespace")
        netns = p.get("netns")
        netns_path = None
        if netns:
            from ansible_collections.handbuilt.containers.plugins.module_utils.validate import nsname
            nsname("netns", netns)
            if "net" in namespaces:
                raise InvalidInput("netns", "joins an existing namespace; do not also list 'net' "
                                   "in namespaces (that creates a new empty one)")
            netns_path = os.path.join(NETNS_DIR, netns)
            if not os.path.exists(netns_path):
                if not self.check_mode:
                    raise InvalidInput("netns", "network namespace %s does not exist (%s)"
                                       % (netns, netns_path))
                self.warnings.append("network namespace %s does not exist (yet)" % netns)

        host = p.get("hostname")
        if host is None and "uts" in namespaces:
            host = self.name
        if host is not None:
            hostname("hostname", host)
            if "uts" not in namespaces:
                raise InvalidInput("hostname", "needs the 'uts' namespace (the host's name would "
                                   "change otherwise)")

        workdir = p.get("workdir") or "/"
        workdir = abspath("workdir", workdir)
        env = {"PATH": DEFAULT_PATH, "HOME": "/root"}
        if host:
            env["HOSTNAME"] = host
        env.update(environment("env", p.get("env")))

        mounts = []
        for i, m in enumerate(p.get("mounts") or []):
            param = "mounts[%d]" % i
            if not isinstance(m, dict) or not m.get("source") or not m.get("target"):
                raise InvalidInput(param, "needs source and target")
            src = abspath(param + ".source", m["source"])
            dest = abspath(param + ".target", m["target"], forbid=("/",))
            if not os.path.exists(src):
                raise InvalidInput(param + ".source", "%s does not exist" % src)
            mounts.append(dict(src=src, dest=dest, readonly=bool(m.get("readonly", False))))

        init = None
        if p.get("init"):
            candidates = [p["init_path"]] if p.get("init_path") else INIT_BINARIES
            init = next((c for c in candidates if os.path.isfile(c)), None)
            if init is None:
                raise InvalidInput("init_path" if p.get("init_path") else "init",
                                   "no init binary found (%s); install tini" % ", ".join(candidates))

        uid_map = gid_map = None
        if "user" in namespaces:
            uid_map = id_map("uid_map", p.get("uid_map") or [DEFAULT_USER_MAP])
            gid_map = id_map("gid_map", p.get("gid_map") or p.get("uid_map") or [DEFAULT_USER_MAP])
        elif p.get("uid_map") or p.get("gid_map"):
            raise InvalidInput("uid_map", "needs 'user' in namespaces")

        masked = p.get("masked_paths")
        readonly = p.get("readonly_paths")
        return dict(
            name=self.name, rootfs=rootfs, command=argv, env=env, workdir=workdir, hostname=host,
            netns=netns or None, netns_path=netns_path,
            cgroups=cgroup_dirs("cgroup", p.get("cgroup"), self.check_mode, self.warnings),
            namespaces=sorted(set(namespaces)),
            capabilities=capabilities("capabilities", p.get("capabilities")),
            no_new_privileges=bool(p.get("no_new_privileges", True)),
            uid_map=uid_map, gid_map=gid_map, mounts=mounts, init=init,
            masked_paths=[abspath("masked_paths", x) for x in masked] if masked is not None
            else list(shim.MASKED_PATHS),
            readonly_paths=[abspath("readonly_paths", x) for x in readonly] if readonly is not None
            else list(shim.READONLY_PATHS),
            readonly_rootfs=bool(p.get("readonly_rootfs", False)),
        )

    @staticmethod
    def _hash(config):
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]

    # --- read -------------------------------------------------------------------
    def read(self):
        record = Record(self.state_dir, self.name)
        drift = []
        if record.alive and self.config:
            drift = self._drift(record)
        return dict(record=record, drift=drift)

    def _drift(self, record):
        """Why a running container no longer matches the declaration (empty: it does)."""
        reasons = []
        pid = record.pid
        if record.state.get("config_hash") != self.config_hash:
            reasons.append("configuration changed")
        if self.config["netns_path"]:
            try:
                want = os.stat(self.config["netns_path"]).st_ino
            except OSError:
                want = None
            have = ns_inodes(pid).get("net")
            if want is not None and want != have:
                reasons.append("netns %s is not the namespace the container runs in (re-created?)"
                               % self.config["netns"])
        try:
            root = os.stat("/proc/%d/root" % pid)
            want = os.stat(self.config["rootfs"])
            if (root.st_dev, root.st_ino) != (want.st_dev, want.st_ino):
                reasons.append("rootfs %s is not the root the container runs in (remounted?)"
                               % self.config["rootfs"])
        except OSError:
            pass
        for directory in self.config["cgroups"]:
            if os.path.isdir(directory) and not in_cgroup(pid, directory):
                reasons.append("the container is not in cgroup %s" % directory)
        return reasons

    # --- plan -------------------------------------------------------------------
    def plan(self, current):
        record = current["record"]
        ops = []
        if self.desired == "started":
            if record.alive and not current["drift"]:
                return []
            if record.alive:
                if not self.restart:
                    raise InvalidInput("restart", "container %s is running with a different "
                                       "configuration (%s); set restart: true to restart it"
                                       % (self.name, "; ".join(current["drift"])))
                ops.append(self._stop_op(record))
            elif record.shim_alive():
                ops.append(self._stop_op(record))
            ops.append(Op(self._start_command(), self._start, record))
        elif self.desired == "stopped":
            if record.alive or record.shim_alive():
                ops.append(self._stop_op(record))
        else:
            if record.alive or record.shim_alive():
                ops.append(self._stop_op(record))
            if record.exists:
                ops.append(Op("rm -r %s" % render([record.dir]), self._remove, record))
        return ops

    def _start_command(self):
        c = self.config
        words = []
        if c["netns"]:
            words += ["nsenter", "--net=" + c["netns_path"]]
        words += ["unshare", "--fork"]
        flag = {"pid": "--pid", "mount": "--mount", "uts": "--uts", "ipc": "--ipc", "net": "--net",
                "cgroup": "--cgroup", "user": "--user"}
        words += [flag[n] for n in c["namespaces"]]
        words += ["--root=" + c["rootfs"], "--mount-proc"]
        if c["workdir"] != "/":
            words.append("--wd=" + c["workdir"])
        if c["init"]:
            words += ["/dev/init", "--"]
        words += ["--"] + c["command"] if not c["init"] else c["command"]
        text = render(words)
        extras = []
        if c["hostname"]:
            extras.append("hostname " + c["hostname"])
        for d in c["cgroups"]:
            extras.append("echo $PID > %s" % render([os.path.join(d, "cgroup.procs")]))
        extras.append("capabilities " + (",".join(cap_names(c["capabilities"])) or "none"))
        shim = os.path.join(containers_dir(self.state_dir), self.name)
        return "%s  # shim %s: %s" % (text, shim, "; ".join(extras))

    def _stop_op(self, record):
        text = "kill -%s %s" % (signal.Signals(self.stop_signal).name[3:], record.pid or "(shim)")
        if self.stop_timeout:
            text += "; after %ss: kill -KILL %s" % (self.stop_timeout, record.pid or "")
        return Op(text.strip(), self._stop, record)

    # --- apply ------------------------------------------------------------------
    def _stop(self, record):
        pid, starttime = record.pid, record.state.get("starttime")
        if is_alive(pid, starttime):
            try:
                os.kill(pid, self.stop_signal)
            except ProcessLookupError:
                pass
            if not wait_until(lambda: not is_alive(pid, starttime), self.stop_timeout):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if not wait_until(lambda: not is_alive(pid, starttime), 10):
                    raise RuntimeError("process %d survived SIGKILL" % pid)
        shim_pid, shim_start = record.state.get("shim_pid"), record.state.get("shim_starttime")
        # The shim reaps the container, records its exit and leaves on its own.
        if not wait_until(lambda: not is_alive(shim_pid, shim_start), 5):
            try:
                os.kill(shim_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: not is_alive(shim_pid, shim_start), 5)

    def _remove(self, record):
        # Every mount the container made lives in its own mount namespace and went
        # with its last process; only the state directory is left to remove
        # (and <state_dir>/containers once no container is left).
        shutil.rmtree(record.dir)
        try:
            os.rmdir(os.path.dirname(record.dir))
        except OSError:
            pass  # other containers' state lives there

    def _start(self, record):
        cdir = os.path.join(containers_dir(self.state_dir), self.name)
        fresh = not os.path.isdir(cdir)
        os.makedirs(cdir, 0o700, exist_ok=True)
        for stale in ("state.json", "exit.json"):
            try:
                os.unlink(os.path.join(cdir, stale))
            except FileNotFoundError:
                pass
        _write_json(os.path.join(cdir, "config.json"), self.config)
        shim_path = os.path.join(cdir, "shim.py")
        with open(shim_path + ".tmp", "w") as fh:
            fh.write(shim_source())
        os.rename(shim_path + ".tmp", shim_path)
        log_path = os.path.join(cdir, "log")
        try:
            report = self._spawn(cdir, shim_path, log_path)
        except Exception:
            if fresh:
                shutil.rmtree(cdir, ignore_errors=True)
            raise
        pid = report["pid"]
        root = os.stat(self.config["rootfs"])
        state = dict(pid=pid, starttime=report["starttime"], shim_pid=report["shim_pid"],
                     shim_starttime=report["shim_starttime"], config_hash=self.config_hash,
                     started_at=started_at(report["starttime"]), namespaces=ns_inodes(pid),
                     root=[root.st_dev, root.st_ino])
        _write_json(os.path.join(cdir, "state.json"), state)

    def _spawn(self, cdir, shim_path, log_path):
        read_fd, write_fd = os.pipe()
        log = open(log_path, "ab")
        proc = None
        try:
            if self.launcher is not None:
                self.launcher.start(shim_path, cdir, write_fd, log.fileno())
            else:
                # Not run_command: the supervisor outlives the module.
                # pylint: disable-next=ansible-bad-function
                proc = subprocess.Popen(
                    [sys.executable, "-S", shim_path, "run", cdir, str(write_fd)],
                    pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True, cwd="/", env=SHIM_ENV)
        finally:
            os.close(write_fd)
            log.close()
        try:
            # The report comes from the supervisor (the first process forks it and
            # exits); read it as it arrives - Popen.wait(timeout) would poll.
            data = b""
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                    raise RuntimeError("the shim did not report within %ss" % START_TIMEOUT)
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(read_fd)
            if proc is not None:
                _reap(proc)
        try:
            report = json.loads(data.decode().splitlines()[0])
        except (ValueError, IndexError):
            report = {"error": "the shim exited without a report (see %s: %s)"
                      % (log_path, _tail(log_path))}
        if "error" in report:
            raise RuntimeError(report["error"])
        return report

    # --- views ------------------------------------------------------------------
    def _declared_view(self, state):
        c = self.config
        return dict(state=state, rootfs=c["rootfs"], command=c["command"], hostname=c["hostname"],
                    netns=c["netns"], cgroups=c["cgroups"], namespaces=c["namespaces"],
                    capabilities=cap_names(c["capabilities"]), config_hash=self.config_hash)

    def view(self, current):
        record = current["record"]
        if not record.exists:
            return {"state": "absent"}
        cfg = record.config or {}
        return dict(state=record.status, rootfs=cfg.get("rootfs"), command=cfg.get("command"),
                    hostname=cfg.get("hostname"), netns=cfg.get("netns"),
                    cgroups=cfg.get("cgroups", []), namespaces=cfg.get("namespaces", []),
                    capabilities=cap_names(cfg.get("capabilities", [])),
                    config_hash=record.state.get("config_hash"))

    def predict(self, before):
        if self.desired == "started":
            return self._declared_view("running")
        if self.desired == "stopped":
            return dict(before, state="exited") if before.get("state") != "absent" else before
        return {"state": "absent"}

    def facts(self, current):
        return {"container": current["record"].describe(live=self.report_live)}


def _reap(proc):
    """Wait for a shim process we started, killing it after START_TIMEOUT."""
    try:
        proc.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path, size=2000):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return ""


# --- exec ------------------------------------------------------------------------
def exec_in(state_dir, name, argv, chdir=None, env=None, timeout=None, stdin=None):
    """Run ``argv`` inside a running container; returns a result dict."""
    container_name("name", name)
    argv = command("command", argv)
    env = environment("env", env)
    if chdir is not None:
        abspath("chdir", chdir)
    if timeout is not None and timeout <= 0:
        raise InvalidInput("timeout", "must be a positive number of seconds")
    record = Record(state_dir, name)
    if not record.exists:
        raise InvalidInput("name", "no container %s under %s" % (name, containers_dir(state_dir)))
    if not record.alive:
        raise InvalidInput("name", "container %s is not running" % name)
    shim_path = os.path.join(record.dir, "shim.py")
    words = [sys.executable, "-S", shim_path, "exec", record.dir]
    opts = []
    if chdir:
        opts += ["--cwd", chdir]
    for key, value in sorted(env.items()):
        opts += ["--env", "%s=%s" % (key, value)]
    read_fd, write_fd = os.pipe()
    try:
        # Not run_command: it passes an fd, feeds stdin and kills the group on timeout.
        # pylint: disable-next=ansible-bad-function
        proc = subprocess.Popen(
            words + [str(write_fd)] + opts + ["--"] + argv, pass_fds=(write_fd,),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, cwd="/",
            env=SHIM_ENV)
    finally:
        os.close(write_fd)
    timed_out = False
    try:
        out, err = proc.communicate(input=stdin.encode() if stdin is not None else None,
                                    timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the command and the shim share a group
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    finally:
        error = b""
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            error += chunk
        os.close(read_fd)
    if error:
        raise PlanError("cannot run %s in container %s: %s"
                        % (render(argv), name, shim._error_text(error)))
    return dict(rc=proc.returncode, stdout=out.decode(errors="replace"),
                stderr=err.decode(errors="replace"), timed_out=timed_out,
                cmd=render(argv), pid=record.pid)


def list_records(state_dir):
    try:
        names = sorted(os.listdir(containers_dir(state_dir)))
    except OSError:
        return []
    return [Record(state_dir, n) for n in names
            if os.path.isfile(os.path.join(containers_dir(state_dir), n, "config.json"))]
