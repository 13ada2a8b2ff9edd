#!/usr/bin/env python3
"""Start, wait for and stop the qemu VMs of the handbuilt.containers VM tests.

Used by molecule/resources/{create,destroy}.yml; usable by hand:

  vmctl.py create  --spec SPEC.json     start every platform of a scenario, wait for a real SSH
                                        login, print the Molecule instance config as JSON
  vmctl.py destroy --rundir DIR         stop the VMs of a run dir (by pid file) and delete disks
  vmctl.py console --rundir DIR         print the serial console logs
  vmctl.py ssh     --rundir DIR NAME [CMD...]
  vmctl.py accel                        print the accelerator that would be used (kvm|tcg)

The SPEC is JSON (written by create.yml, never assembled by hand in a shell):
  {"rundir": "...", "logdir": "...", "image_dir": "...", "scenario": "default",
   "boot": "auto|snapshot|cold", "restrict": true, "timeout": 300, "lifetime": 7200,
   "platforms": [{"name": "vm1", "smp": 2, "memory": "1024M", "l2_address": "10.99.0.11/24"}]}

Boot modes: "cold" boots the kernel (~20-30 s to SSH under TCG). "snapshot" restores a
template that was booted once and saved with `savevm` (built on first use per image, qemu
version, accelerator, -smp and -m, cached next to the image), then gives the clone its own
clock, RNG seed, machine-id, hostname and L2 MAC/address (~2-5 s to SSH). "auto" = snapshot,
falling back to a cold boot if anything about the snapshot path fails.

Every qemu gets a watchdog ("reaper") that kills it after `lifetime` seconds, so a crashed
test run cannot leave a VM running forever. Only processes whose command line carries this
run's pid file are ever signalled. Standard library only; Python >= 3.9.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QEMU = os.environ.get("HANDBUILT_VM_QEMU", "qemu-system-x86_64")
SNAPSHOT_TAG = "booted"
TEMPLATE_LAYOUT = "3"  # bump when the qemu device layout below changes
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
MEM_RE = re.compile(r"^[0-9]+[MG]$")
CONSOLE_TAIL = 80
T0 = time.monotonic()


class VMError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[vmctl {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- accelerator -------------
def qemu_version() -> str:
    out = subprocess.run([QEMU, "--version"], check=True, capture_output=True, text=True).stdout
    return out.splitlines()[0].strip()


def _probe_kvm(image_dir: Path) -> bool:
    """Boot the image's kernel under KVM to a deliberate panic (no root fs): proves that
    vCPUs really run (here /dev/kvm opens and creates VMs, but vCPUs crash or hang)."""
    with tempfile.TemporaryDirectory(prefix="hbvm-kvmprobe-") as tmp:
        con = Path(tmp) / "console.log"
        cmd = [QEMU, "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-m", "256",
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-kernel", str(image_dir / "vmlinuz"),
               "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent",
               "-serial", f"file:{con}"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = con.read_text(errors="replace") if con.exists() else ""
                if "Kernel panic" in text or "VFS:" in text:
                    return True
                if proc.poll() is not None:
                    text = con.read_text(errors="replace") if con.exists() else ""
                    return "Kernel panic" in text or "VFS:" in text
                time.sleep(0.2)
            return False
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def accelerator(image_dir: Path | None) -> str:
    forced = os.environ.get("HANDBUILT_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    if image_dir is None:
        return "kvm?"
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    key = hashlib.sha256(f"{boot_id}\n{qemu_version()}".encode()).hexdigest()[:16]
    cache = image_dir.parent / f".kvm-probe-{key}"
    with contextlib.suppress(OSError):
        return "kvm" if cache.read_text().strip() == "kvm" else "tcg"
    log("probing KVM (boots the kernel once; result cached until the next host reboot)")
    result = "kvm" if _probe_kvm(image_dir) else "tcg"
    log(f"KVM probe: using {result}")
    with contextlib.suppress(OSError):
        cache.write_text(result + "\n")
    return result


def accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    # tb-size=128: qemu's default 1 GiB translation cache doubles its RSS for no gain here.
    return ["-accel", "tcg,thread=multi,tb-size=128", "-cpu", "max"]


# ---------------------------------------------------------------- helpers -----------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive_with(pid: int, marker: str) -> bool:
    """True if pid runs and its command line contains marker (never signal a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        return False
    return marker.encode() in cmdline


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def kill_checked(pid: int, marker: str, grace: float = 5.0) -> None:
    if not pid_alive_with(pid, marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive_with(pid, marker):
            return
        time.sleep(0.1)
    if pid_alive_with(pid, marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for dummy in range(50):
            if not pid_alive_with(pid, marker):
                return
            time.sleep(0.1)


def tail(path: Path, lines: int = CONSOLE_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no console log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def ssh_argv(key: Path, port: int, timeout: int = 5) -> list[str]:
    return ["ssh", "-q", "-i", str(key), "-p", str(port), "-l", "root",
            "-o", "BatchMode=yes", "-o", f"ConnectTimeout={timeout}",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "ControlMaster=no",
            "-o", "ControlPath=none", "127.0.0.1"]


def qmp(sock: Path, *commands: dict, timeout: float = 300) -> list:
    """Run QMP commands in order over the VM's QMP socket; returns their "return" values.
    Asynchronous events are skipped; an error response raises VMError."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(str(sock))
    f = s.makefile("rwb", buffering=0)

    def response() -> dict:
        while True:
            line = f.readline()
            if not line:
                raise VMError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    results = []
    try:
        response()  # greeting
        for cmd in ({"execute": "qmp_capabilities"}, *commands):
            f.write(json.dumps(cmd).encode() + b"\n")
            msg = response()
            if "error" in msg:
                raise VMError(f"QMP {cmd['execute']}: {msg['error'].get('desc', msg)}")
            results.append(msg.get("return"))
    finally:
        f.close()
        s.close()
    return results[1:]


def hmp(command: str) -> dict:
    return {"execute": "human-monitor-command", "arguments": {"command-line": command}}


# ---------------------------------------------------------------- one VM ------------------
class VM:
    def __init__(self, spec: dict, platform: dict, index: int, accel: str, l2: dict):
        self.name = platform["name"]
        if not NAME_RE.match(self.name):
            raise VMError(f"platform name {self.name!r} must match {NAME_RE.pattern}")
        self.smp = int(platform.get("smp", 1))
        self.memory = str(platform.get("memory", "512M"))
        if not MEM_RE.match(self.memory) or not 1 <= self.smp <= 16:
            raise VMError(f"{self.name}: bad smp/memory {self.smp}/{self.memory}")
        self.l2_address = platform.get("l2_address")
        if self.l2_address:
            self.l2_address = str(ipaddress.ip_interface(self.l2_address))
        self.l2_mac = "52:54:00:ab:%02x:%02x" % divmod(index + 1, 256)
        # Who Ansible logs in as (the image has root and the sudo user hbadmin, same key).
        self.user = platform.get("user") or "root"
        if not NAME_RE.match(self.user):
            raise VMError(f"{self.name}: bad user {self.user!r}")
        self.scenario = spec["scenario"]
        self.rundir = Path(spec["rundir"])
        self.image = Path(platform.get("image_dir") or spec["image_dir"])
        self.accel = accel
        self.l2 = l2
        self.restrict = bool(spec.get("restrict", True))
        self.port = 0
        self.pidfile = self.rundir / f"{self.name}.pid"
        self.disk = self.rundir / f"{self.name}.qcow2"
        self.console = self.rundir / f"{self.name}.console.log"
        self.monsock = self.rundir / f"{self.name}.qmp"
        self.key = self.image / "id_ed25519"
        self.mode = "cold"
        self.timings: dict[str, float] = {}

    def cmdline_extra(self) -> str:
        extra = [f"hbvm.hostname={self.name}", f"hbvm.l2mac={self.l2_mac}"]
        if self.l2_address:
            extra.append(f"hbvm.l2={self.l2_address}")
        return " ".join(extra)

    def start(self, template: Path | None) -> None:
        self.mode = "snapshot" if template else "cold"
        for p in (self.pidfile, self.disk, self.console, self.monsock):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        if template:
            subprocess.run(["cp", "--sparse=always", str(template), str(self.disk)], check=True)
            # The clone's console starts with the template's boot log (qemu appends to it).
            boot_log = template.with_suffix(".console.log")
            with open(self.console, "w", encoding="utf-8", errors="replace") as con:
                with contextlib.suppress(OSError):
                    con.write(boot_log.read_text(errors="replace"))
                con.write(f"\n---- [hbvm] {self.name}: restored from template snapshot "
                          f"{template.name} at {time.strftime('%Y-%m-%d %H:%M:%S')} ----\n")
        else:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(self.image / "base.qcow2"), str(self.disk)], check=True)
        last_err = ""
        for _attempt in range(3):
            self.port = free_port()
            argv = qemu_argv(
                name=f"hbvm-{self.scenario}-{self.name}", image=self.image, accel=self.accel,
                smp=self.smp, memory=self.memory, disk=self.disk, ssh_port=self.port,
                l2=self.l2, l2_mac=self.l2_mac, restrict=self.restrict, console=self.console,
                monsock=self.monsock, pidfile=self.pidfile, append_extra=self.cmdline_extra(),
                loadvm=SNAPSHOT_TAG if template else None)
            t = time.monotonic()
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
            if res.returncode == 0:
                self.started = t
                return
            last_err = (res.stderr or res.stdout).strip()
            if "hostfwd" not in last_err and "host forwarding" not in last_err:
                break
        raise VMError(f"{self.name}: qemu failed to start: {last_err}")

    @property
    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def alive(self) -> bool:
        pid = self.pid
        return pid is not None and pid_alive_with(pid, str(self.pidfile))

    def ssh(self, *remote: str, timeout: int = 5, check: bool = True, capture: bool = False,
            limit: float = 180) -> subprocess.CompletedProcess:
        """Run a command in the guest (argv, quoted for the remote shell). `timeout` is the
        connect timeout, `limit` bounds the whole call."""
        cmd = ssh_argv(self.key, self.port, timeout) + [shlex.join(remote)]
        try:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, check=check, text=True,
                                  capture_output=capture, timeout=limit)
        except subprocess.TimeoutExpired as e:
            raise VMError(f"{self.name}: `{shlex.join(remote)[:60]}` took over {limit:.0f} s") from e
        except subprocess.CalledProcessError as e:
            raise VMError(f"{self.name}: `{shlex.join(remote)[:60]}` failed (rc={e.returncode})"
                          f"{': ' + e.stderr.strip() if e.stderr else ''}") from e

    def wait_ssh(self, timeout: float, poll: float = 1.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise VMError(f"{self.name}: qemu exited while booting")
            try:
                ok = self.ssh("true", timeout=5, check=False, capture=True, limit=30).returncode == 0
            except VMError:
                ok = False
            if ok:
                took = time.monotonic() - self.started
                self.timings["ssh"] = round(took, 1)
                return took
            time.sleep(poll)
        raise VMError(f"{self.name}: no SSH login within {timeout:.0f} s")

    def personalise(self) -> None:
        """A clone restored from the template is the template: give it its own identity."""
        args = ["/usr/local/sbin/hbvm-setup", "--time", f"{time.time():.3f}",
                "--seed", secrets.token_hex(64), "--new-machine-id",
                "--hostname", self.name, "--l2-mac", self.l2_mac]
        if self.l2_address:
            args += ["--l2-address", self.l2_address]
        self.ssh(*args, timeout=10, capture=True, limit=120)

    def stop(self) -> None:
        pid = self.pid
        if pid is not None:
            kill_checked(pid, str(self.pidfile))

    def instance_config(self) -> dict:
        return {"instance": self.name, "address": "127.0.0.1", "user": self.user,
                "port": str(self.port), "identity_file": str(self.key)}


def qemu_argv(*, name, image, accel, smp, memory, disk, ssh_port, l2, l2_mac, restrict,
              console, monsock, pidfile, append_extra="", loadvm=None) -> list[str]:
    # Keep the device layout identical between template and clones (explicit PCI slots):
    # -loadvm only works against the same machine. Change it => bump TEMPLATE_LAYOUT.
    append = ("root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 biosdevname=0 quiet "
              "fsck.mode=skip systemd.show_status=auto tsc=reliable " + append_extra).strip()
    user = f"user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    if restrict:
        user += ",restrict=on"
    argv = [QEMU, "-name", name, "-machine", "pc",
            *accel_args(accel), "-smp", str(smp), "-m", memory,
            "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", append,
            "-drive", f"file={disk},format=qcow2,if=none,id=d0,cache=unsafe,discard=unmap",
            "-device", "virtio-blk-pci,drive=d0,addr=0x6",
            "-netdev", user,
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,addr=0x3",
            "-netdev", f"socket,id=n1,mcast={l2['group']}:{l2['port']},localaddr=127.0.0.1",
            "-device", f"virtio-net-pci,netdev=n1,mac={l2_mac},addr=0x4",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0,addr=0x5",
            "-chardev", f"file,id=ser0,path={console},append=on", "-serial", "chardev:ser0",
            "-qmp", f"unix:{monsock},server=on,wait=off",
            "-pidfile", str(pidfile), "-daemonize"]
    if loadvm:
        argv += ["-loadvm", loadvm]
    return argv


def random_l2() -> dict:
    """A private multicast group/port per run: VMs of other runs never share the segment."""
    rnd = random.SystemRandom()
    return {"group": f"239.255.{rnd.randrange(1, 255)}.{rnd.randrange(1, 255)}",
            "port": rnd.randrange(20000, 60000)}


# ---------------------------------------------------------------- template ----------------
def template_key(image: Path, accel: str, smp: int, memory: str) -> str:
    parts = [image.name, qemu_version(), accel, str(smp), memory, TEMPLATE_LAYOUT]
    if accel == "kvm":
        with contextlib.suppress(OSError):
            flags = [l for l in Path("/proc/cpuinfo").read_text().splitlines()
                     if l.startswith(("model name", "flags"))][:2]
            parts += flags
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def ensure_template(image: Path, accel: str, smp: int, memory: str, timeout: float) -> Path:
    """Boot once, wait until boot finished, `stop` + `savevm booted` + quit. Cached, atomic."""
    key = template_key(image, accel, smp, memory)
    tdir = image / "templates"
    tdir.mkdir(exist_ok=True)
    final = tdir / f"{key}.qcow2"
    if final.exists():
        return final
    with open(tdir / f".{key}.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if final.exists():
            return final
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=tdir))
        vm_spec = {"scenario": "template", "rundir": str(work), "image_dir": str(image),
                   "restrict": True}
        vm = VM(vm_spec, {"name": "template", "smp": smp, "memory": memory}, 254, accel,
                random_l2())
        vm.cmdline_extra = lambda: ""  # type: ignore[method-assign]
        try:
            log(f"building boot template {final.name} (smp={smp}, memory={memory}, {accel})")
            vm.start(None)
            spawn_reaper(vm.pidfile, vm.pid, int(timeout) + 600)
            took = vm.wait_ssh(timeout)
            log(f"template: SSH up after {took:.1f} s")
            # Let boot finish so clones do not inherit half-started units.
            vm.ssh("timeout", "120", "systemctl", "is-system-running", "--wait", check=False,
                   capture=True)
            vm.ssh("sync", timeout=10)
            t = time.monotonic()
            out = qmp(vm.monsock, {"execute": "stop"}, hmp(f"savevm {SNAPSHOT_TAG}"),
                      hmp("info snapshots"))
            if SNAPSHOT_TAG not in str(out[-1]).split():
                raise VMError(f"savevm did not create the snapshot: {out!r}")
            with contextlib.suppress(VMError, OSError):
                qmp(vm.monsock, {"execute": "quit"}, timeout=30)
            log(f"template: savevm took {time.monotonic() - t:.1f} s")
            for dummy in range(100):
                if not vm.alive():
                    break
                time.sleep(0.1)
            vm.stop()
            snaps = subprocess.run(["qemu-img", "snapshot", "-U", "-l", str(vm.disk)],
                                   check=True, capture_output=True, text=True).stdout
            if SNAPSHOT_TAG not in snaps.split():
                raise VMError(f"savevm did not create the snapshot: {out!r}")
            os.replace(vm.disk, final)
            shutil.copyfile(vm.console, tdir / f"{key}.console.log")
            log(f"template ready in {time.monotonic() - t0:.1f} s")
            return final
        except Exception:
            log("template build failed; console:\n" + tail(vm.console))
            raise
        finally:
            vm.stop()
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- reaper ------------------
def spawn_reaper(pidfile: Path, pid: int, lifetime: int) -> int:
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "reaper", "--pidfile", str(pidfile),
         "--pid", str(pid), "--lifetime", str(lifetime)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)
    return proc.pid


def cmd_reaper(a: argparse.Namespace) -> int:
    """Kill the VM when its lifetime is over, or as soon as it is orphaned (its pid file was
    removed or replaced while qemu still runs: nothing could stop it any more)."""
    deadline = time.monotonic() + a.lifetime
    pidfile = Path(a.pidfile)
    while time.monotonic() < deadline:
        if not pid_alive_with(a.pid, str(pidfile)):
            return 0
        if read_pid(pidfile) != a.pid:
            break
        time.sleep(2)
    kill_checked(a.pid, str(pidfile))
    return 0


# ---------------------------------------------------------------- commands ----------------
def save_state(rundir: Path, state: dict) -> None:
    tmp = rundir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, rundir / "state.json")


def destroy_rundir(rundir: Path, logdir: Path | None) -> list[str]:
    stopped = []
    if not rundir.is_dir():
        return stopped
    for pidfile in sorted(rundir.glob("*.pid")):
        pid = read_pid(pidfile)
        if pid is not None and pid_alive_with(pid, str(pidfile)):
            kill_checked(pid, str(pidfile))
            stopped.append(pidfile.stem)
        pidfile.unlink(missing_ok=True)
    state = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((rundir / "state.json").read_text())
    for vm in state.get("vms", []):
        rpid, marker = vm.get("reaper_pid"), f"reaper --pidfile {vm.get('pidfile')}"
        if rpid and pid_alive_with(rpid, marker):
            kill_checked(rpid, marker, grace=2)
    if logdir:
        logdir.mkdir(parents=True, exist_ok=True)
        for con in rundir.glob("*.console.log"):
            shutil.copyfile(con, logdir / con.name)
    for p in rundir.iterdir():
        if p.suffix in (".qcow2", ".qmp", ".pid") or p.name.startswith("state.json"):
            p.unlink(missing_ok=True)
    return stopped


def cmd_create(a: argparse.Namespace) -> int:
    spec = json.loads(Path(a.spec).read_text())
    rundir = Path(spec["rundir"])
    image = Path(spec["image_dir"])
    logdir = Path(spec["logdir"]) if spec.get("logdir") else None
    boot = os.environ.get("HANDBUILT_VM_BOOT") or spec.get("boot", "auto")
    timeout = float(spec.get("timeout", 300))
    lifetime = int(os.environ.get("HANDBUILT_VM_LIFETIME") or spec.get("lifetime", 7200))
    if boot not in ("auto", "snapshot", "cold"):
        raise VMError(f"boot mode must be auto, snapshot or cold, not {boot!r}")
    for img in {image, *(Path(p["image_dir"]) for p in spec["platforms"] if p.get("image_dir"))}:
        for f in ("base.qcow2", "vmlinuz", "initrd.img", "id_ed25519"):
            if not (img / f).is_file():
                raise VMError(f"image {img} is incomplete: no {f} (run tests/vm/build-image.sh)")
    rundir.mkdir(parents=True, exist_ok=True)
    stale = destroy_rundir(rundir, None)
    if stale:
        log(f"stopped stale VMs from an earlier run: {', '.join(stale)}")
    if logdir:
        for old in logdir.glob("*.console.log"):
            old.unlink(missing_ok=True)

    accel = accelerator(image)
    l2 = random_l2()
    vms = [VM(spec, p, i, accel, l2) for i, p in enumerate(spec["platforms"])]
    if len({vm.name for vm in vms}) != len(vms):
        raise VMError("platform names must be unique")
    log(f"{len(vms)} VM(s), accel={accel}, boot={boot}, L2 segment {l2['group']}:{l2['port']}")

    def run_all(mode: str) -> None:
        templates: dict[tuple, Path] = {}
        if mode == "snapshot":
            for vm in vms:
                k = (vm.image, vm.smp, vm.memory)
                if k not in templates:
                    templates[k] = ensure_template(vm.image, accel, vm.smp, vm.memory, timeout)
        for vm in vms:
            vm.start(templates.get((vm.image, vm.smp, vm.memory)))
            vm.reaper_pid = spawn_reaper(vm.pidfile, vm.pid, lifetime)
        save_state(rundir, {"l2": l2, "accel": accel, "vms": [
            {"name": vm.name, "port": vm.port, "pidfile": str(vm.pidfile),
             "reaper_pid": vm.reaper_pid, "mode": vm.mode} for vm in vms]})
        for vm in vms:
            took = vm.wait_ssh(timeout if mode == "cold" else 60,
                               poll=1.0 if mode == "cold" else 0.2)
            log(f"{vm.name}: SSH up {took:.1f} s after qemu start ({vm.mode}, port {vm.port})")
        if mode == "snapshot":
            def personalise(vm: VM) -> None:
                t = time.monotonic()
                vm.personalise()
                vm.timings["personalise"] = round(time.monotonic() - t, 1)

            with concurrent.futures.ThreadPoolExecutor(len(vms)) as pool:
                for fut in [pool.submit(personalise, vm) for vm in vms]:
                    fut.result()
            log("clones personalised (clock, RNG, machine-id, hostname, L2 MAC/address)")

    def dump_consoles() -> None:
        for vm in vms:
            print(f"===== serial console of {vm.name} ({vm.console}), last {CONSOLE_TAIL} "
                  f"lines =====\n{tail(vm.console)}", file=sys.stderr, flush=True)

    try:
        if boot == "cold":
            run_all("cold")
        else:
            try:
                run_all("snapshot")
            except Exception as e:  # noqa: BLE001 - any failure: fall back to cold boot
                if boot == "snapshot":
                    raise
                log(f"snapshot boot failed ({e}); falling back to a cold boot")
                dump_consoles()
                destroy_rundir(rundir, None)
                run_all("cold")
    except BaseException:
        dump_consoles()
        destroy_rundir(rundir, logdir)
        raise
    result = {"instances": [vm.instance_config() for vm in vms],
              "l2": l2, "accel": accel,
              "timings": {vm.name: dict(vm.timings, mode=vm.mode) for vm in vms}}
    print(json.dumps(result))
    return 0


def cmd_destroy(a: argparse.Namespace) -> int:
    stopped = destroy_rundir(Path(a.rundir), Path(a.logdir) if a.logdir else None)
    log(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    print(json.dumps({"stopped": stopped}))
    return 0


def cmd_console(a: argparse.Namespace) -> int:
    found = False
    for d in filter(None, (a.rundir, a.logdir)):
        for con in sorted(Path(d).glob("*.console.log")):
            found = True
            print(f"===== {con} (last {a.lines} lines) =====\n{tail(con, a.lines)}")
        if found:
            break
    if not found:
        print("no console logs found")
    return 0


def cmd_ssh(a: argparse.Namespace) -> int:
    state = json.loads((Path(a.rundir) / "state.json").read_text())
    vm = next((v for v in state["vms"] if v["name"] == a.name), None)
    if vm is None:
        raise VMError(f"no VM {a.name!r} in {a.rundir}")
    key = Path(a.image_dir) / "id_ed25519" if a.image_dir else None
    if key is None:
        raise VMError("--image-dir is required")
    argv = ssh_argv(key, vm["port"]) + ([shlex.join(a.command)] if a.command else [])
    return subprocess.run(argv, check=False).returncode


def cmd_accel(a: argparse.Namespace) -> int:
    print(accelerator(Path(a.image_dir) if a.image_dir else None))
    return 0


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--spec", required=True)
    c.set_defaults(func=cmd_create)
    d = sub.add_parser("destroy")
    d.add_argument("--rundir", required=True)
    d.add_argument("--logdir")
    d.set_defaults(func=cmd_destroy)
    k = sub.add_parser("console")
    k.add_argument("--rundir")
    k.add_argument("--logdir")
    k.add_argument("--lines", type=int, default=CONSOLE_TAIL)
    k.set_defaults(func=cmd_console)
    s = sub.add_parser("ssh")
    s.add_argument("--rundir", required=True)
    s.add_argument("--image-dir")
    s.add_argument("name")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_ssh)
    x = sub.add_parser("accel")
    x.add_argument("--image-dir")
    x.set_defaults(func=cmd_accel)
    r = sub.add_parser("reaper")
    r.add_argument("--pidfile", required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--lifetime", type=int, required=True)
    r.set_defaults(func=cmd_reaper)
    a = p.parse_args()
    try:
        return a.func(a)
    except VMError as e:
        log(f"ERROR: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
