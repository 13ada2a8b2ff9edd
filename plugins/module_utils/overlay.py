# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlayfs mounts: reading /proc/self/mountinfo, and the OverlayMount model.

The kernel is the source of truth: a mount is read back from mountinfo (its
super options ``lowerdir=``, ``upperdir=``, ``workdir=``), compared with the
declaration, and the plan is the ``mkdir``/``umount``/``mount -t overlay``
steps a person would type. Directories the collection creates are recorded,
one per line, in ``<state_dir>/overlay/<escaped path>``; that file existing
means the mount is the collection's, and ``state=absent`` removes only the
directories listed there.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import shutil

from ansible_collections.handbuilt.containers.plugins.module_utils import validate
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import (
    Op,
    PlanError,
    render,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    Resource,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import (
    InvalidInput,
)

MOUNTINFO = "/proc/self/mountinfo"
# Directories an overlay must never be mounted on, nor use as upper/work dir.
SYSTEM_DIRS = frozenset([
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
    "/usr", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local", "/usr/sbin",
    "/usr/share", "/usr/include", "/usr/src", "/var", "/var/lib", "/var/log", "/var/cache",
    "/var/tmp", "/var/spool", "/var/mail", "/var/backups", "/run/lock", "/run/user",
    "/run/netns", "/run/handbuilt", "/var/lib/handbuilt", "/sys/fs/cgroup",
])
_OCTAL = re.compile(r"\\([0-7]{3})")


# ---------------------------------------------------------------------------
# mountinfo parsing
def unescape_octal(text):
    r"""Undo the kernel's seq_file escaping: ``\040`` -> space, ``\134`` -> backslash."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def unescape_backslash(text):
    r"""Undo overlayfs option escaping: ``\,`` -> ``,``, ``\:`` -> ``:``, ``\\`` -> ``\``."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def split_lowerdir(value):
    r"""Split a ``lowerdir=`` value on unescaped ``:`` (``::`` marks data-only layers)."""
    layers, cur, i = [], [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur.append(value[i:i + 2])
            i += 2
            continue
        if c == ":":
            layers.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    layers.append("".join(cur))
    return [unescape_backslash(layer) for layer in layers if layer != ""]


def escape_option(path, colon=True):
    """Escape a path for overlayfs mount options (the inverse of the kernel's parsing)."""
    out = path.replace("\\", "\\\\").replace(",", "\\,")
    return out.replace(":", "\\:") if colon else out


def parse_super_options(text):
    """Overlay super options from mountinfo -> dict with lower (list), upper, work."""
    result = {"lower": [], "upper": None, "work": None, "options": []}
    for raw in text.split(","):
        option = unescape_octal(raw)
        key, dummy, value = option.partition("=")
        if key == "lowerdir":
            result["lower"] += split_lowerdir(value)
        elif key in ("lowerdir+", "datadir+"):
            result["lower"].append(value)
        elif key == "upperdir":
            result["upper"] = unescape_backslash(value)
        elif key == "workdir":
            result["work"] = unescape_backslash(value)
        else:
            result["options"].append(option)
    return result


def parse_mountinfo_line(line):
    """One mountinfo line -> dict (mount point and source unescaped)."""
    fields = line.rstrip("\n").split(" ")
    sep = fields.index("-", 6)
    entry = {
        "id": int(fields[0]), "parent": int(fields[1]), "dev": fields[2],
        "root": unescape_octal(fields[3]), "mountpoint": unescape_octal(fields[4]),
        "mount_options": fields[5], "fstype": fields[sep + 1],
        "source": unescape_octal(fields[sep + 2]),
        "super_options": fields[sep + 3] if len(fields) > sep + 3 else "",
        "propagation": fields[6:sep],  # shared:N, master:N, ...
    }
    if entry["fstype"] == "overlay":
        entry.update(parse_super_options(entry["super_options"]))
    return entry


_PARSED = {}  # mountinfo line -> its entry: compose reads mountinfo once per container


def parse_mountinfo(text):
    """Every mount of mountinfo ``text``; the entries are shared, treat them as read-only."""
    entries = []
    for line in text.splitlines():
        entry = _PARSED.get(line)
        if entry is None and line.strip():
            entry = _PARSED[line] = parse_mountinfo_line(line)
        if entry is not None:
            entries.append(entry)
    return entries


def read_mountinfo(path=MOUNTINFO):
    with open(path) as fh:
        return parse_mountinfo(fh.read())


def mount_at(mounts, path):
    """The topmost mount whose mount point is ``path`` (later lines stack on earlier)."""
    found = None
    for entry in mounts:
        if entry["mountpoint"] == path:
            found = entry
    return found


def is_within(child, parent):
    """True when ``child`` is ``parent`` or lies beneath it (normalised absolute paths)."""
    if parent == "/":
        return True
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def mounts_beneath(mounts, path, exclude_self=True):
    return [m["mountpoint"] for m in mounts
            if is_within(m["mountpoint"], path) and not (exclude_self and m["mountpoint"] == path)]


# ---------------------------------------------------------------------------
# Who uses a mount
def other_namespace_users(dev, proc="/proc", propagation=(), ignore=()):
    """Processes in *other* mount namespaces that hold a mount of superblock ``dev``.

    A copy that is a slave of our mount's peer group (``master:N`` for our
    ``shared:N``, as in systemd services' private namespaces) goes away with our
    unmount, so it does not count.

    A container that pivot_root-ed into an overlay has its own copy of the mount in
    its own mount namespace: unmounting ours would succeed and leave it running on
    the old layers while a new mount reuses the same upper/work dirs. One mountinfo
    read per namespace, so this stays cheap. Namespaces in ``ignore`` (``mnt:[ino]``)
    are left out.
    """
    try:
        own = os.readlink(os.path.join(proc, "self/ns/mnt"))
    except OSError:
        own = None
    seen, users = set(), []
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            ns = os.readlink(os.path.join(proc, pid, "ns/mnt"))
        except OSError:
            continue
        if ns == own or ns in seen or ns in ignore:
            continue
        seen.add(ns)
        try:
            with open(os.path.join(proc, pid, "mountinfo")) as fh:
                text = fh.read()
        except OSError:
            continue
        slave_of_ours = {"master:" + tag.split(":", 1)[1] for tag in propagation
                         if tag.startswith("shared:")}
        for line in text.splitlines():
            fields = line.split(" ")
            if len(fields) > 2 and fields[2] == dev:
                if slave_of_ours & set(fields[6:fields.index("-", 6)]):
                    continue
                users.append("pid %s (%s, in mount namespace %s)" % (pid, comm(pid, proc), ns))
                break
    return users


def comm(pid, proc="/proc"):
    try:
        with open(os.path.join(proc, str(pid), "comm")) as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def open_users(path, proc="/proc", limit=10):
    """Processes of this mount namespace with their cwd, root or an open file under ``path``."""
    try:
        own = os.readlink(os.path.join(proc, "self/ns/mnt"))
    except OSError:
        own = None
    users = []
    for pid in os.listdir(proc):
        if not pid.isdigit() or pid == str(os.getpid()):
            continue
        base = os.path.join(proc, pid)
        try:
            if os.readlink(os.path.join(base, "ns/mnt")) != own:
                continue
            links = [os.path.join(base, "cwd"), os.path.join(base, "root")]
            links += [os.path.join(base, "fd", fd) for fd in os.listdir(os.path.join(base, "fd"))]
        except OSError:
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target.startswith("/") and is_within(target, path):
                users.append("pid %s (%s) %s %s" % (pid, comm(pid, proc),
                                                    os.path.basename(link) if "/fd/" not in link
                                                    else "has open", target))
                break
        if len(users) >= limit:
            break
    return users


# ---------------------------------------------------------------------------
# Syscalls
_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_char_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def sys_mount(source, target, fstype, flags=0, data=None):
    rc = libc().mount(os.fsencode(source), os.fsencode(target), os.fsencode(fstype), flags,
                      os.fsencode(data) if data is not None else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def sys_umount(target, flags=0):
    rc = libc().umount2(os.fsencode(target), flags)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


# ---------------------------------------------------------------------------
# Ownership records
def record_path(state_dir, path):
    """``<state_dir>/overlay/<path, systemd-escaped>`` (hashed when too long)."""
    name = path.strip("/") or "-"
    out = []
    for i, c in enumerate(name):
        if c == "/":
            out.append("-")
        elif c.isalnum() or c in "_" or (c == "." and i > 0):
            out.append(c)
        else:
            out.extend("%%%02x" % b for b in c.encode("utf-8"))
    escaped = "".join(out)
    if len(escaped) > 200:
        escaped = escaped[:120] + "-" + hashlib.sha256(path.encode("utf-8")).hexdigest()[:32]
    return os.path.join(state_dir, "overlay", escaped)


def read_record(record):
    """The record's lines as (role, dir) pairs, or None when there is no record."""
    try:
        with open(record) as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return None
    created = []
    for line in lines:
        role, dummy, path = line.partition(" ")
        if path:
            created.append((role, path))
    return created


def append_record(record, role=None, path=None):
    os.makedirs(os.path.dirname(record), 0o755, exist_ok=True)
    with open(record, "a") as fh:
        if path is not None:
            fh.write("%s %s\n" % (role, path))


def makedirs_recorded(record, role, path, mode=0o755):
    """mkdir -p, recording every directory actually created (parents first)."""
    missing = []
    cur = path
    while not os.path.lexists(cur):
        missing.append(cur)
        cur = os.path.dirname(cur)
    append_record(record)
    for d in reversed(missing):
        os.mkdir(d, mode)
        append_record(record, role if d == path else "parent", d)


# ---------------------------------------------------------------------------
def check_path(param, value, system_ok=False):
    if not isinstance(value, str) or not value:
        raise InvalidInput(param, "must be a non-empty absolute path")
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise InvalidInput(param, "%r must not contain control characters (newline, tab)" % value)
    norm = validate.abspath(param, value, forbid=() if system_ok else SYSTEM_DIRS)
    real = os.path.realpath(norm)
    if not system_ok and real in SYSTEM_DIRS:
        raise InvalidInput(param, "%r resolves to the system directory %s and cannot be used here"
                           % (value, real))
    return real


def nearest_existing(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


class OverlayMount(Resource):
    """An overlayfs mount of ``lower`` (top first) + ``upper``/``work`` on ``path``."""

    def __init__(self, path, lower=None, upper=None, work=None, state="mounted",
                 state_dir="/run/handbuilt", force=False, check_mode=False, stopped_first=()):
        super().__init__()
        # Mount namespaces (inodes) whose processes the same run stops before this
        # overlay's turn (compose stops a container before unmounting its rootfs):
        # check mode predicts past them; a real run still finds them gone or refuses.
        self.stopped_first = {"mnt:[%d]" % ino for ino in stopped_first} if check_mode else set()
        if state not in ("mounted", "unmounted", "absent"):
            raise InvalidInput("state", "must be mounted, unmounted or absent")
        self.state = state
        self.force = force
        self.check_mode = check_mode
        self.path = check_path("path", path)
        self.record = record_path(state_dir, self.path)
        self.lower = [check_path("lower", d, system_ok=True) for d in (lower or [])]
        self.upper = check_path("upper", upper) if upper else None
        self.work = check_path("work", work) if work else None
        if state == "mounted":
            self._validate_mounted()
        elif (upper is None) != (work is None):
            raise InvalidInput("work" if work is None else "upper", "upper and work go together")
        self._after = None

    def _validate_mounted(self):
        if not self.lower:
            raise InvalidInput("lower", "at least one lower directory is required to mount")
        if not self.upper or not self.work:
            raise InvalidInput("upper" if not self.upper else "work",
                               "required with state=mounted (each container writes to its own upper)")
        if len(set(self.lower)) != len(self.lower):
            raise InvalidInput("lower", "a directory is listed twice: %s" % self.lower)
        if self.upper == self.work:
            raise InvalidInput("work", "must differ from upper (%s)" % self.upper)
        if is_within(self.work, self.upper):
            raise InvalidInput("work", "%s lies inside upper %s; overlayfs needs them side by side"
                               % (self.work, self.upper))
        if is_within(self.upper, self.work):
            raise InvalidInput("upper", "%s lies inside work %s; overlayfs needs them side by side"
                               % (self.upper, self.work))
        for param, d in (("upper", self.upper), ("work", self.work)):
            if is_within(d, self.path) or is_within(self.path, d):
                raise InvalidInput(param, "%s and path %s must not contain one another" % (d, self.path))
        for d in self.lower:
            for param, other in (("path", self.path), ("upper", self.upper), ("work", self.work)):
                if is_within(other, d):
                    raise InvalidInput("lower", "lower directory %s contains %s %s" % (d, param, other))
                if is_within(d, other):
                    raise InvalidInput("lower", "lower directory %s lies inside %s %s" % (d, param, other))
        missing = [d for d in self.lower if not os.path.isdir(d)]
        if missing:
            msg = "lower directory %s does not exist (or is not a directory)" % ", ".join(missing)
            if self.check_mode and all(not os.path.exists(d) for d in missing):
                self.warnings.append(msg + "; in a real run this is an error unless an earlier "
                                     "task creates it")
            else:
                raise InvalidInput("lower", msg)
        for param, d in (("upper", self.upper), ("work", self.work), ("path", self.path)):
            if os.path.lexists(d) and not os.path.isdir(d):
                raise InvalidInput(param, "%s exists and is not a directory" % d)
        up, wk = nearest_existing(self.upper), nearest_existing(self.work)
        if os.stat(up).st_dev != os.stat(wk).st_dev:
            raise InvalidInput("work", "upper (%s) and work (%s) are on different filesystems; "
                               "overlayfs needs them on the same one" % (self.upper, self.work))
        data = self.options()
        if len(data.encode("utf-8")) >= 4096:
            raise InvalidInput("lower", "the mount options are %d bytes; mount(2) takes at most 4095 "
                               "(fewer or shorter lower paths)" % len(data.encode("utf-8")))

    # --- reading ------------------------------------------------------------
    def read(self):
        mounts = read_mountinfo()
        created = read_record(self.record)
        return {"mount": mount_at(mounts, self.path), "mounts": mounts,
                "recorded": created is not None, "created": created or []}

    def options(self):
        return "lowerdir=%s,upperdir=%s,workdir=%s" % (
            ":".join(escape_option(d) for d in self.lower),
            escape_option(self.upper), escape_option(self.work))

    def mount_command(self):
        return render(["mount", "-t", "overlay", "overlay", "-o", self.options(), self.path])

    def same_layers(self, mount):
        have = [mount["lower"], mount["upper"], mount["work"]]
        want = [self.lower, self.upper, self.work]
        if have == want:
            return True
        # A hand-made mount may name symlinks; the kernel resolved them when mounting.
        resolved = [[os.path.realpath(d) for d in have[0]],
                    os.path.realpath(have[1]) if have[1] else None,
                    os.path.realpath(have[2]) if have[2] else None]
        return resolved == want

    # --- planning -------------------------------------------------------------
    def plan(self, current):
        mount = current["mount"]
        if mount is not None and mount["fstype"] != "overlay":
            raise PlanError("path: %s is already a mount point (%s from %s), not an overlay; "
                            "refusing to touch it" % (self.path, mount["fstype"], mount["source"]))
        if self.state == "mounted":
            return self._plan_mounted(current, mount)
        return self._plan_down(current, mount)

    def _existing_created(self, current):
        return [d for dummy, d in current["created"] if os.path.lexists(d)]

    def _plan_mounted(self, current, mount):
        ops = []
        same = mount is not None and self.same_layers(mount)
        created = self._existing_created(current)
        if mount is not None and not same:
            if not current["recorded"]:
                self.adopt()
            if self.check_mode:
                self._check_not_busy(current, mount, "remount it with other layers")
            ops.append(Op(render(["umount", self.path]), self._umount, mount,
                          "remount it with other layers"))
        if not same:
            for role, d in (("upper", self.upper), ("work", self.work), ("path", self.path)):
                if not os.path.isdir(d):
                    ops.append(Op(render(["mkdir", "-p", d]), makedirs_recorded, self.record, role, d))
                    while not os.path.lexists(d):  # mkdir -p also creates missing parents
                        created.append(d)
                        d = os.path.dirname(d)
            ops.append(Op(self.mount_command(), self._mount))
        elif not current["recorded"]:
            self.adopt()
            ops.append(Op(render(["touch", self.record]), append_record, self.record))
        self._after = {"state": "mounted", "path": self.path, "lower": list(self.lower),
                       "upper": self.upper, "work": self.work, "owned": True,
                       "created": sorted(set(created))}
        return ops

    def _plan_down(self, current, mount):
        ops = []
        created = self._existing_created(current)
        if mount is not None:
            if not current["recorded"] and not self.force:
                raise PlanError(
                    "path: the overlay on %s was not mounted by handbuilt.containers (no record "
                    "in %s); refusing to unmount it. Set force: true to unmount it anyway."
                    % (self.path, os.path.dirname(self.record)))
            why = "unmount it" if self.state == "unmounted" else "remove it"
            if self.check_mode:
                self._check_not_busy(current, mount, why)
            ops.append(Op(render(["umount", self.path]), self._umount, mount, why))
        if self.state == "unmounted":
            if not current["recorded"]:
                self._after = {"state": "absent", "path": self.path}
            else:
                self._after = {"state": "unmounted", "path": self.path, "created": sorted(created)}
            return ops
        # absent: remove what the collection created, newest first, then the record.
        mounts_after = [m for m in current["mounts"] if m is not mount]
        for role, d in reversed(current["created"]):
            if not os.path.lexists(d):
                continue
            busy = mounts_beneath(mounts_after, d, exclude_self=False)
            if busy and role not in ("upper", "work", "path"):
                continue  # a parent shared with other overlays (their layers live beneath it)
            if busy:
                raise PlanError("%s %s has mounts beneath it (%s); refusing to remove it"
                                % (role, d, ", ".join(busy)))
            if role in ("upper", "work"):
                ops.append(Op(render(["rm", "-rf", d]), shutil.rmtree, d))
            else:
                ops.append(Op(render(["rmdir", d]), self._rmdir, d, role == "parent"))
        for param, d in (("upper", self.upper), ("work", self.work)):
            if d and os.path.lexists(d) and d not in [p for dummy, p in current["created"]]:
                self.warnings.append("%s %s was not created by handbuilt.containers; it is left in "
                                     "place" % (param, d))
        if current["recorded"]:
            ops.append(Op(render(["rm", "-f", self.record]), self._remove_record))
        self._after = {"state": "absent", "path": self.path}
        return ops

    def adopt(self):
        self.adopted = True
        self.warnings.append("the overlay on %s was not mounted by handbuilt.containers; it is "
                             "converged and adopted (recorded in %s)" % (self.path, self.record))

    # --- steps ---------------------------------------------------------------
    def _busy_reasons(self, current, mount):
        reasons = other_namespace_users(mount["dev"], propagation=mount.get("propagation", ()),
                                        ignore=self.stopped_first)
        reasons += ["also mounted at %s" % m["mountpoint"] for m in current["mounts"]
                    if m["dev"] == mount["dev"] and m["mountpoint"] != self.path]
        reasons += ["mount beneath it: %s" % p for p in mounts_beneath(current["mounts"], self.path)]
        return reasons

    def _busy_error(self, reasons, why):
        return PlanError(
            "path: the overlay on %s is in use, so handbuilt.containers cannot %s: %s. Stop "
            "what uses it (for example the container running on it) and run again."
            % (self.path, why, "; ".join(reasons)))

    def _check_not_busy(self, current, mount, why):
        reasons = self._busy_reasons(current, mount) + open_users(self.path)
        if reasons:
            raise self._busy_error(reasons, why)

    def _umount(self, mount, why):
        reasons = self._busy_reasons(read_and_merge(mount), mount)
        if reasons:
            raise self._busy_error(reasons, why)
        try:
            sys_umount(self.path)  # no MNT_DETACH: the kernel says EBUSY if anything uses it
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                users = open_users(self.path) or ["open files or working directories beneath it (EBUSY)"]
                raise self._busy_error(users, why)
            raise

    def _mount(self):
        append_record(self.record)
        try:
            sys_mount("overlay", self.path, "overlay", 0, self.options())
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise PlanError("%s failed: the kernel refused the options (EINVAL); `dmesg | tail` "
                                "names the reason (upper on a filesystem overlayfs cannot use, "
                                "upper/work in use by another overlay, ...)" % self.mount_command())
            raise

    def _rmdir(self, d, shared=False):
        try:
            os.rmdir(d)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if not shared:  # a parent other overlays still use is expected to stay
                self.warnings.append("%s is not empty; it is left in place" % d)

    def _remove_record(self):
        os.unlink(self.record)
        for d in (os.path.dirname(self.record),):
            try:
                os.rmdir(d)
            except OSError:
                pass

    # --- views ---------------------------------------------------------------
    def view(self, current):
        mount = current["mount"]
        if mount is not None and mount["fstype"] == "overlay":
            return {"state": "mounted", "path": self.path, "lower": mount["lower"],
                    "upper": mount["upper"], "work": mount["work"], "owned": current["recorded"],
                    "created": sorted(self._existing_created(current))}
        if mount is not None:
            return {"state": "mounted", "path": self.path, "fstype": mount["fstype"]}
        if current["recorded"]:
            return {"state": "unmounted", "path": self.path,
                    "created": sorted(self._existing_created(current))}
        return {"state": "absent", "path": self.path}

    def predict(self, before):
        return self._after if self._after is not None else before

    def facts(self, current):
        mount = current["mount"]
        if mount is None or mount["fstype"] != "overlay":
            return {"overlay": None}
        return {"overlay": {"path": self.path, "lower": mount["lower"], "upper": mount["upper"],
                            "work": mount["work"], "device": mount["dev"],
                            "mount_id": mount["id"], "owned": current["recorded"]}}


def read_and_merge(mount):
    """Fresh mountinfo for the busy check at apply time."""
    return {"mounts": read_mountinfo(), "mount": mount}


def overlay_lowers_everywhere(proc="/proc", ignore_devices=()):
    """Every lower dir of every overlay mounted in any mount namespace of the host.

    Returns {lower dir: description of one user}; an image version is in use while
    one of its directories is a lower layer somewhere. Overlays whose superblock
    (``major:minor``) is in ``ignore_devices`` are left out.
    """
    seen, lowers = set(), {}
    pids = ["self"] + [p for p in os.listdir(proc) if p.isdigit()]
    for pid in pids:
        try:
            ns = os.readlink(os.path.join(proc, pid, "ns/mnt"))
            if ns in seen:
                continue
            seen.add(ns)
            with open(os.path.join(proc, pid, "mountinfo")) as fh:
                text = fh.read()
        except OSError:
            continue
        for line in text.splitlines():
            if " - overlay " not in line:
                continue
            try:
                entry = parse_mountinfo_line(line)
            except (ValueError, IndexError):
                continue
            if entry["dev"] in ignore_devices:
                continue
            for lower in entry.get("lower", []):
                lowers.setdefault(lower, "the overlay on %s (pid %s, mount namespace %s)"
                                  % (entry["mountpoint"], os.getpid() if pid == "self" else pid, ns))
    return lowers
