# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container supervisor (a tiny conmon), run as a standalone script.

The ``container`` module copies this file to
``<state_dir>/containers/<name>/shim.py`` and runs it with the module's Python:
it must outlive the module (AnsiballZ deletes its temporary directory when the
module returns), so it imports nothing but the standard library.

``shim.py run DIR REPORT_FD``
    Start the container described by ``DIR/config.json``. The first process
    forks the supervisor and exits (double fork; the module started it in a new
    session). The supervisor:

    1. becomes a child subreaper and forks an intermediate process, which joins
       the declared network namespace, optionally unshares a user namespace
       (the supervisor writes its uid/gid maps), unshares pid/mount/uts/ipc/...
       and forks the container process: PID 1 of the new pid namespace;
    2. learns the container's host pid, writes it into every declared cgroup's
       ``cgroup.procs`` and only then lets it go on;
    3. the container process sets its hostname, makes its mounts private, binds
       the rootfs onto itself, mounts /proc, /sys, a minimal /dev (host device
       nodes bound in), the declared bind mounts, pivots into the rootfs
       (``pivot_root(".", ".")`` then detaches the old root), masks and
       read-only-mounts the OCI default paths, drops capabilities from every
       set, sets no_new_privs, resets signal dispositions and execs the command;
    4. start-up errors travel back over a close-on-exec pipe (EOF = the exec
       succeeded) and the supervisor reports ``{"pid": ...}`` or
       ``{"error": ...}`` on REPORT_FD, closes every other fd and waits for
       the container, recording its exit status in ``DIR/exit.json``.

``shim.py launch SOCK_FD``
    Start many containers from one Python start-up (compose starts dozens at
    once, and each start-up costs more than the kernel work). Each message on
    the unix socket SOCK_FD carries a state dir, and a REPORT_FD and a log fd
    as SCM_RIGHTS; for each, the launcher forks a process in a session of its
    own, with its output in the log, that does what ``run`` does. It exits when
    the socket closes.

``shim.py exec DIR ERR_FD [--cwd DIR] [--env K=V]... -- ARGV...``
    What ``docker exec`` does: join the container's cgroups and namespaces
    (``/proc/<pid>/ns/*``), fork into its pid namespace, drop to its
    capability set and exec ARGV; exits with the command's status.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
# os.execvpe imports warnings lazily, after the host root is gone: imported here first.
import warnings  # noqa: F401 pylint: disable=unused-import

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET, "cgroup": CLONE_NEWCGROUP, "user": CLONE_NEWUSER,
}
# /proc/<pid>/ns/<file> for each namespace name of the collection.
NS_FILES = {"user": "user", "cgroup": "cgroup", "ipc": "ipc", "uts": "uts", "net": "net",
            "pid": "pid", "mount": "mnt"}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_MM = 35
PR_SET_MM_ARG_START = 8
PR_SET_MM_ARG_END = 9
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522

SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "ppc64le": 203,
                  "s390x": 217, "riscv64": 41, "i686": 217}

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))
# The OCI runtime spec's defaults (runc / Docker).
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
INIT_PATH = "/dev/init"  # where tini is bound when init: true

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def _b(text):
    return text.encode() if isinstance(text, str) else text


def unshare(flags):
    _check(_libc.unshare(flags), "unshare(0x%x)" % flags)


def setns(fd, nstype=0):
    _check(_libc.setns(fd, nstype), "setns")


def mount(source, target, fstype=None, flags=0, data=None):
    _check(_libc.mount(_b(source) if source else None, _b(target), _b(fstype) if fstype else None,
                       ctypes.c_ulong(flags), _b(data) if data else None),
           "mount %s on %s" % (source or fstype or "", target))


def umount2(target, flags=0):
    _check(_libc.umount2(_b(target), flags), "umount %s" % target)


def pivot_root(new_root, put_old):
    machine = os.uname().machine  # what platform.machine() returns, without importing it
    nr = SYS_PIVOT_ROOT.get(machine)
    if nr is None:
        raise OSError(0, "pivot_root: unknown syscall number on %s" % machine)
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root")


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl(%d)" % option)


_ARGV_BUFFERS = []  # what /proc/self/cmdline points at must live as long as the process


def _cmdline(argv):
    """``argv`` as /proc/<pid>/cmdline holds it: each argument NUL-terminated."""
    return b"".join(_b(arg) + b"\0" for arg in argv)


def show_as(argv):
    """Point /proc/self/cmdline (what ps shows) at ``argv``; False if the kernel refuses.

    A process forked by the launcher keeps the launcher's command line; this gives
    it the one a ``run`` start would have had. Needs CAP_SYS_RESOURCE (root)."""
    data = _cmdline(argv)
    buf = ctypes.create_string_buffer(data, len(data))
    start = ctypes.addressof(buf)
    end = start + len(data)
    # The kernel wants start <= end at every step: which to move first depends on
    # where the new buffer lies relative to the old one.
    for steps in (((PR_SET_MM_ARG_START, start), (PR_SET_MM_ARG_END, end)),
                  ((PR_SET_MM_ARG_END, end), (PR_SET_MM_ARG_START, start))):
        try:
            for field, address in steps:
                prctl(PR_SET_MM, field, address)
        except OSError:
            continue
        _ARGV_BUFFERS.append(buf)
        return True
    return False


def overwrite_argv(argv):
    """Without CAP_SYS_RESOURCE: write ``argv`` over the process's own argument area (what
    setproctitle does), cut to its length, the rest NULs."""
    data = _cmdline(argv)
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, IndexError, ValueError):
        return
    if end - start > 1:
        ctypes.memmove(start, data[:end - start - 1].ljust(end - start, b"\0"), end - start)


def sethostname(name):
    data = _b(name)
    _check(_libc.sethostname(data, len(data)), "sethostname")


def cap_last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except OSError:
        return 40


def drop_capabilities(keep):
    """Keep only the capability numbers in ``keep`` in every set of this process.

    Order matters: the bounding set needs CAP_SETPCAP to shrink, so it goes first;
    capset then sets effective = permitted = inheritable = ``keep``; the ambient
    set is cleared. After execve a root process gets permitted = inheritable |
    bounding = ``keep`` again, so CapEff of the command is exactly ``keep``.
    """
    keep = set(keep)
    for cap in range(cap_last_cap() + 1):
        if cap not in keep:
            prctl(PR_CAPBSET_DROP, cap)
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernels before 4.3 have no ambient set
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = word
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def reset_signals():
    """Python ignores SIGPIPE and SIGXFSZ and that survives exec: undo it."""
    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def proc_starttime(pid):
    """Field 22 of /proc/<pid>/stat (parsed after the last ')'), or None."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            data = fh.read()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2:].split()[19])


def _write_json(fd, obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _describe(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return "%s: %s" % (exc.filename, exc.strerror) if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


# --- inside the container ------------------------------------------------------
def _mount_flags(path):
    """The locked flags of the mount holding ``path`` (a remount must keep them)."""
    st = os.statvfs(path)
    flags = 0
    for bit, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                    (getattr(os, "ST_NOATIME", 1024), MS_NOATIME),
                    (getattr(os, "ST_NODIRATIME", 2048), MS_NODIRATIME),
                    (getattr(os, "ST_RELATIME", 4096), MS_RELATIME)):
        if st.f_flag & bit:
            flags |= ms
    return flags


def _bind_readonly(path):
    mount(path, path, None, MS_BIND | MS_REC)
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags(path))


def _touch(path, directory):
    if os.path.lexists(path):
        return
    if directory:
        os.makedirs(path, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))


def _inside(rootfs, path):
    """``path`` (absolute, inside the container) under ``rootfs``, refusing symlinks.

    The rootfs is not trusted: a symlink such as /proc -> /etc would make a
    mount land on the host. Every component must be a real directory (or be
    missing, then it is created).
    """
    current = rootfs
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise OSError(0, "%s is a symlink inside the rootfs; refusing to mount on it" % path)
    return current


def setup_container(cfg):
    rootfs = cfg["rootfs"]
    namespaces = cfg["namespaces"]
    os.setsid()
    if "uts" in namespaces and cfg.get("hostname"):
        sethostname(cfg["hostname"])
    # Nothing this namespace mounts may propagate back to the host.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(rootfs, rootfs, None, MS_BIND | MS_REC)  # pivot_root needs a mount point
    # From here on every path is relative to the rootfs bind (our cwd): in a user
    # namespace the mapped root may not traverse the host directories above it.
    os.chdir(rootfs)
    rootfs = "."
    if "user" in namespaces:
        # Become the namespace's root (host uid of uid_map) before creating files on
        # the mounts this namespace owns (unmapped host root would get EOVERFLOW).
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        try:
            os.setgroups([])
        except OSError:
            pass

    proc = _inside(rootfs, "/proc")
    _touch(proc, True)
    mount("proc", proc, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)

    sys_dir = _inside(rootfs, "/sys")
    _touch(sys_dir, True)
    try:
        mount("sysfs", sys_dir, "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY)
    except OSError:
        # A user namespace may not mount sysfs for a network namespace it does not
        # own: bind the host's read-only instead (what runc does).
        mount("/sys", sys_dir, None, MS_BIND | MS_REC)
        mount(None, sys_dir, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags(sys_dir))

    dev = _inside(rootfs, "/dev")
    _touch(dev, True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    for node in DEV_NODES:
        target = os.path.join(dev, node)
        _touch(target, False)
        mount("/dev/" + node, target, None, MS_BIND)
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    for name, target in DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))
    if cfg.get("init"):
        target = os.path.join(dev, INIT_PATH.rsplit("/", 1)[1])
        _touch(target, False)
        mount(cfg["init"], target, None, MS_BIND)
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags(target))

    for bind in cfg.get("mounts", []):
        target = _inside(rootfs, bind["dest"])
        _touch(target, os.path.isdir(bind["src"]))
        mount(bind["src"], target, None, MS_BIND | MS_REC)
        if bind.get("readonly"):
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags(target))

    # Enter the rootfs the way runc does: no old-root directory needed.
    pivot_root(".", ".")
    umount2(".", MNT_DETACH)
    os.chdir("/")

    for path in cfg.get("masked_paths", MASKED_PATHS):
        if not os.path.exists(path):
            continue
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
        else:
            mount("/dev/null", path, None, MS_BIND)
    for path in cfg.get("readonly_paths", READONLY_PATHS):
        if os.path.exists(path):
            _bind_readonly(path)
    if cfg.get("readonly_rootfs"):
        mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags("/"))

    workdir = cfg.get("workdir") or "/"
    os.makedirs(workdir, 0o755, exist_ok=True)
    os.chdir(workdir)


def finish_and_exec(cfg, argv, env):
    """Common tail of start and exec: capabilities, no_new_privs, signals, exec."""
    drop_capabilities(cfg["capabilities"])
    if cfg.get("no_new_privileges", True):
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    reset_signals()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise OSError(exc.errno, "cannot execute %s: %s" % (argv[0], exc.strerror))


# --- run: the supervisor -------------------------------------------------------
def _write_file(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _spawn(cfg):
    """Start the container; returns its host pid once it has exec'd the command."""
    namespaces = cfg["namespaces"]
    net_fd = os.open(cfg["netns_path"], os.O_RDONLY) if cfg.get("netns_path") else None
    cgroup_fds = [os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY) for d in cfg.get("cgroups", [])]
    err_r, err_w = os.pipe()   # container -> supervisor: error JSON, EOF when exec'd
    msg_r, msg_w = os.pipe()   # intermediate -> supervisor: "U" (map me), "P<pid>"
    go_r, go_w = os.pipe()     # supervisor -> intermediate/container: go on
    flags = 0
    for name in namespaces:
        if name != "user" and not (name == "net" and net_fd is not None):
            flags |= NAMESPACE_FLAGS[name]

    ipid = os.fork()
    if ipid == 0:  # the intermediate process
        try:
            os.close(err_r)
            os.close(msg_r)
            os.close(go_w)
            if net_fd is not None:
                setns(net_fd, CLONE_NEWNET)
                os.close(net_fd)
            if "user" in namespaces:
                unshare(CLONE_NEWUSER)
                os.write(msg_w, b"U")
                if os.read(go_r, 1) != b"g":
                    os._exit(1)
                # Still host uid 0 here (the mapped root comes later, in setup_container):
                # the rootfs path may cross directories only host root can traverse.
            unshare(flags)
            cpid = os.fork()
            if cpid == 0:  # the container: PID 1 of its pid namespace
                try:
                    os.close(msg_w)
                    if os.read(go_r, 1) != b"g":  # the supervisor joined our cgroups
                        os._exit(1)
                    os.close(go_r)
                    setup_container(cfg)
                    argv = list(cfg["command"])
                    if cfg.get("init"):
                        argv = [INIT_PATH, "--"] + argv
                    finish_and_exec(cfg, argv, cfg["env"])
                except BaseException as exc:  # noqa: BLE001 - reported to the module
                    _write_json(err_w, {"error": _describe(exc), "stage": "container"})
                os._exit(127)
            os.write(msg_w, ("P%d\n" % cpid).encode())
        except BaseException as exc:  # noqa: BLE001
            _write_json(err_w, {"error": _describe(exc), "stage": "namespaces"})
            os._exit(1)
        os._exit(0)

    os.close(err_w)
    os.close(msg_w)
    os.close(go_r)
    if net_fd is not None:
        os.close(net_fd)
    cpid = None
    try:
        buf = b""
        while True:
            chunk = os.read(msg_r, 64)
            if not chunk:
                break
            buf += chunk
            if buf.startswith(b"U"):
                buf = buf[1:]
                _write_file("/proc/%d/uid_map" % ipid, cfg["uid_map"])
                _write_file("/proc/%d/gid_map" % ipid, cfg["gid_map"])
                os.write(go_w, b"g")
            if buf.startswith(b"P") and buf.endswith(b"\n"):
                cpid = int(buf[1:].strip())
                break
        os.waitpid(ipid, 0)
        if cpid is None:
            err = _read_all(err_r)
            raise RuntimeError(_error_text(err) or "the intermediate process died")
        for fd in cgroup_fds:
            os.write(fd, str(cpid).encode())
            os.close(fd)
        os.write(go_w, b"g")
        os.close(go_w)
        go_w = None
        err = _read_all(err_r)
        if err:
            try:
                os.kill(cpid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(cpid, 0)
            raise RuntimeError(_error_text(err))
        return cpid
    except BaseException:
        if cpid is not None:
            try:
                os.kill(cpid, signal.SIGKILL)
                os.waitpid(cpid, 0)
            except OSError:
                pass
        raise
    finally:
        os.close(err_r)
        os.close(msg_r)
        if go_w is not None:
            os.close(go_w)


def _error_text(raw):
    lines = [line for line in raw.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return ""
    try:
        return json.loads(lines[0])["error"]
    except (ValueError, KeyError):
        return lines[0]


def run(state_dir, report_fd):
    os.set_inheritable(report_fd, False)
    with open(os.path.join(state_dir, "config.json")) as fh:
        cfg = json.load(fh)
    if os.fork():
        os._exit(0)  # the module reaps this one; the supervisor is orphaned
    os.chdir("/")
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        cpid = _spawn(cfg)
    except BaseException as exc:  # noqa: BLE001
        _write_json(report_fd, {"error": _describe(exc)})
        os._exit(1)
    _write_json(report_fd, {"pid": cpid, "starttime": proc_starttime(cpid),
                            "shim_pid": os.getpid(), "shim_starttime": proc_starttime(os.getpid())})
    os.close(report_fd)
    os.closerange(3, 65536)  # nothing of the module may be held open by the shim
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    sys.stdout.write("%s shim %d: container pid %d started\n" % (time.strftime("%FT%T"), os.getpid(), cpid))
    sys.stdout.flush()
    exit_info = {"pid": cpid, "exit_code": None, "signal": None}
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == cpid:
            if os.WIFSIGNALED(status):
                exit_info["signal"] = os.WTERMSIG(status)
                exit_info["exit_code"] = 128 + os.WTERMSIG(status)
            else:
                exit_info["exit_code"] = os.WEXITSTATUS(status)
            break
    exit_info["finished_at"] = time.time()
    tmp = os.path.join(state_dir, "exit.json.tmp")
    try:
        with open(tmp, "w") as fh:
            json.dump(exit_info, fh)
        os.rename(tmp, os.path.join(state_dir, "exit.json"))
    except OSError:
        pass  # the state dir was removed (state=absent): nothing to record
    sys.stdout.write("%s shim %d: container exited: %s\n" % (time.strftime("%FT%T"), os.getpid(), exit_info))
    sys.stdout.flush()
    os._exit(0)


def launch(sock_fd):
    import socket  # only here: run and exec start faster without it

    sock = socket.socket(fileno=sock_fd)
    while True:
        message, fds, dummy, dummy = socket.recv_fds(sock, 4096, 2)
        if not message:
            break  # the module closed its end: every container is started
        report_fd, log_fd = fds
        pid = os.fork()
        if pid == 0:
            sock.close()
            os.setsid()
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            state_dir = message.decode()
            if not show_as([sys.executable, "-S", os.path.join(state_dir, "shim.py"), "run",
                            state_dir, str(report_fd)]):
                overwrite_argv(["shim.py", "run", state_dir])  # what fits in the launcher's
            try:
                run(state_dir, report_fd)  # forks the supervisor, then exits
            except BaseException as exc:  # noqa: BLE001
                _write_json(report_fd, {"error": _describe(exc)})
            os._exit(1)
        os.close(report_fd)
        os.close(log_fd)
        os.waitpid(pid, 0)
    os._exit(0)


# --- exec: enter a running container -------------------------------------------
def enter(state_dir, err_fd, argv, cwd=None, extra_env=None):
    os.set_inheritable(err_fd, False)
    with open(os.path.join(state_dir, "config.json")) as fh:
        cfg = json.load(fh)
    with open(os.path.join(state_dir, "state.json")) as fh:
        state = json.load(fh)
    pid = state["pid"]
    try:
        if proc_starttime(pid) != state["starttime"]:
            raise RuntimeError("the container is not running")
        # Join the cgroups first, while still host root (in a user namespace we would not
        # be allowed to write cgroup.procs): every child inherits them.
        for directory in cfg.get("cgroups", []):
            _write_file(os.path.join(directory, "cgroup.procs"), "0")
        ns_fds = []
        for name in ("ipc", "uts", "net", "pid", "cgroup", "mount", "user"):
            path = "/proc/%d/ns/%s" % (pid, NS_FILES[name])
            try:
                if os.stat(path).st_ino == os.stat("/proc/self/ns/%s" % NS_FILES[name]).st_ino:
                    continue
            except FileNotFoundError:
                continue
            ns_fds.append((name, os.open(path, os.O_RDONLY)))
        # Privileged first: join every namespace, the user namespace last.
        for name, fd in ns_fds:
            setns(fd, NAMESPACE_FLAGS[name])
            os.close(fd)
        if any(name == "user" for name, dummy in ns_fds):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        env = dict(cfg["env"])
        env.update(extra_env or {})
        os.chdir(cwd or cfg.get("workdir") or "/")
    except BaseException as exc:  # noqa: BLE001
        _write_json(err_fd, {"error": _describe(exc)})
        os._exit(125)
    child = os.fork()  # the pid namespace applies to children only
    if child == 0:
        try:
            finish_and_exec(cfg, argv, env)
        except BaseException as exc:  # noqa: BLE001
            _write_json(err_fd, {"error": _describe(exc)})
        os._exit(127)
    os.close(err_fd)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            dummy, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def main(args):
    if len(args) >= 3 and args[0] == "run":
        run(args[1], int(args[2]))
    elif len(args) == 2 and args[0] == "launch":
        launch(int(args[1]))
    elif len(args) >= 3 and args[0] == "exec":
        state_dir, err_fd, rest = args[1], int(args[2]), args[3:]
        cwd, env = None, {}
        while rest and rest[0] != "--":
            if rest[0] == "--cwd":
                cwd, rest = rest[1], rest[2:]
            elif rest[0] == "--env":
                key, dummy, value = rest[1].partition("=")
                env[key] = value
                rest = rest[2:]
            else:
                raise SystemExit("shim exec: unknown option %s" % rest[0])
        if not rest[1:]:
            raise SystemExit("shim exec: no command")
        enter(state_dir, err_fd, rest[1:], cwd, env)
    else:
        raise SystemExit("usage: shim.py run DIR REPORT_FD | launch SOCK_FD | exec DIR ERR_FD [--cwd D] [--env K=V] -- ARGV")


if __name__ == "__main__":
    main(sys.argv[1:])
