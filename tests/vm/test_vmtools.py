"""Fast checks of the VM test tooling (no qemu, no root): pytest tests/vm/test_vmtools.py"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


vmctl = _load("hbvm_vmctl", HERE / "vmctl.py")


def _argv(tmp: Path, *, name: str, port: int, l2: dict, mac: str, loadvm=None, extra=""):
    return vmctl.qemu_argv(
        name=name, image=tmp / "img", accel="tcg", smp=2, memory="1024M",
        disk=tmp / f"{name}.qcow2", ssh_port=port, l2=l2, l2_mac=mac, restrict=True,
        console=tmp / f"{name}.log", monsock=tmp / f"{name}.qmp", pidfile=tmp / f"{name}.pid",
        append_extra=extra, loadvm=loadvm)


def _machine(argv: list[str]) -> list[str]:
    """The parts of a qemu command line that -loadvm requires to be identical."""
    out = []
    for opt, val in zip(argv, argv[1:]):
        if opt == "-device":
            out.append(opt + " " + ",".join(p for p in val.split(",") if not p.startswith("mac=")))
        elif opt in ("-machine", "-accel", "-cpu", "-smp", "-m", "-object"):
            out.append(f"{opt} {val}")
        elif opt == "-netdev":
            out.append(opt + " " + val.split(",")[0] + "," + val.split(",")[1])
    return out


def test_clone_has_the_template_machine(tmp_path):
    template = _argv(tmp_path, name="t", port=2000, l2={"group": "239.255.1.1", "port": 30000},
                     mac="52:54:00:ab:00:ff")
    clone = _argv(tmp_path, name="c", port=2001, l2={"group": "239.255.9.9", "port": 40000},
                  mac="52:54:00:ab:00:01", loadvm="booted", extra="hbvm.hostname=c")
    assert _machine(template) == _machine(clone)
    assert clone[-2:] == ["-loadvm", "booted"]


def test_network_is_restricted_and_local(tmp_path):
    argv = _argv(tmp_path, name="c", port=2222, l2={"group": "239.255.3.4", "port": 31000},
                 mac="52:54:00:ab:00:01")
    netdevs = [v for o, v in zip(argv, argv[1:]) if o == "-netdev"]
    user = next(n for n in netdevs if n.startswith("user,"))
    assert "restrict=on" in user.split(",")
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in user.split(",")
    sock = next(n for n in netdevs if n.startswith("socket,"))
    assert "localaddr=127.0.0.1" in sock.split(",")
    assert "mcast=239.255.3.4:31000" in sock.split(",")
    assert "-daemonize" in argv and "-pidfile" in argv


def test_random_l2_is_admin_scoped_multicast():
    seen = set()
    for dummy in range(200):
        l2 = vmctl.random_l2()
        a, b, c, d = (int(x) for x in l2["group"].split("."))
        assert (a, b) == (239, 255) and 1 <= c <= 254 and 1 <= d <= 254
        assert 20000 <= l2["port"] < 60000
        seen.add((l2["group"], l2["port"]))
    assert len(seen) > 190


@pytest.mark.parametrize("name", ["Node1", "-x", "a_b", "x" * 50, ""])
def test_bad_platform_names_are_refused(tmp_path, name):
    spec = {"scenario": "s", "rundir": str(tmp_path), "image_dir": str(tmp_path)}
    with pytest.raises(vmctl.VMError):
        vmctl.VM(spec, {"name": name}, 0, "tcg", vmctl.random_l2())


def test_vm_defaults_and_macs(tmp_path):
    spec = {"scenario": "s", "rundir": str(tmp_path), "image_dir": str(tmp_path)}
    vms = [vmctl.VM(spec, {"name": f"n{i}", "l2_address": f"10.0.0.{i + 1}/24"}, i, "tcg",
                    vmctl.random_l2()) for i in range(3)]
    assert len({vm.l2_mac for vm in vms}) == 3
    assert vms[0].smp == 1 and vms[0].memory == "512M"
    assert "hbvm.l2=10.0.0.1/24" in vms[0].cmdline_extra()
    assert vms[0].instance_config()["user"] == "root"


def test_login_user_is_the_platforms(tmp_path):
    spec = {"scenario": "s", "rundir": str(tmp_path), "image_dir": str(tmp_path)}
    vm = vmctl.VM(spec, {"name": "n1", "user": "hbadmin"}, 0, "tcg", vmctl.random_l2())
    assert vm.instance_config()["user"] == "hbadmin"
    with pytest.raises(vmctl.VMError):
        vmctl.VM(spec, {"name": "n1", "user": "root;x"}, 0, "tcg", vmctl.random_l2())


def test_destroy_of_missing_or_empty_rundir(tmp_path):
    assert vmctl.destroy_rundir(tmp_path / "nope", None) == []
    (tmp_path / "x.pid").write_text("999999999\n")
    assert vmctl.destroy_rundir(tmp_path, tmp_path / "logs") == []
    assert not (tmp_path / "x.pid").exists()


def test_pid_check_refuses_foreign_processes():
    import os
    argv0 = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()
    assert vmctl.pid_alive_with(os.getpid(), argv0)
    assert not vmctl.pid_alive_with(os.getpid(), "/no/such/pidfile.pid")


def test_molecule_steps_times_each_step(tmp_path):
    out = tmp_path / "t.jsonl"
    text = ("\x1b[36mINFO    \x1b[0m default ➜ create: Executing\n"
            "noise\n"
            "INFO     default ➜ create: Executed: Successful\n"
            "INFO     default ➜ verify: Executing\n"
            "ERROR    default ➜ verify: Executed: Failed\n")
    res = subprocess.run([sys.executable, str(HERE / "molecule-steps.py"), "--json", str(out),
                          "--label", "default"], input=text.encode(), capture_output=True,
                         check=True)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    steps = [(r.get("step"), r.get("result")) for r in recs]
    assert steps == [("create", "Successful"), ("verify", "Failed"), ("total", None)]
    assert b"noise" in res.stdout and b"step timings" in res.stdout


def test_recipes_parse():
    for conf in (HERE / "distros").glob("*.conf"):
        keys = {}
        for line in conf.read_text().splitlines():
            if line and not line.startswith("#"):
                k, dummy, v = line.partition("=")
                keys[k] = v
        assert set(keys) <= {"suite", "components", "kernel", "packages"}, conf
        assert keys["suite"] and keys["kernel"], conf
        assert "python3-pyroute2" in keys["packages"].split(), conf


def test_build_image_check_mode_does_not_build(tmp_path):
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HANDBUILT_VM_CACHE": str(tmp_path),
           "HOME": str(tmp_path)}
    res = subprocess.run(["bash", str(HERE / "build-image.sh"), "--check"], env=env,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert res.stdout.strip().startswith(str(tmp_path) + "/bookworm-")
    assert list(tmp_path.iterdir()) == []
    bad = subprocess.run(["bash", str(HERE / "build-image.sh"), "--distro", "../etc"], env=env,
                         capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "invalid distro" in bad.stderr
