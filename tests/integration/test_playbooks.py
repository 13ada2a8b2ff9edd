# -*- coding: utf-8 -*-
"""build_container.yml and teardown.yml, as users run them, inside the sandbox."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile

import pytest
import yaml

import conftest
from conftest import ping, sh, snapshot

BUILD = "playbooks/build_container.yml"
TEARDOWN = "playbooks/teardown.yml"
REMOVE = "Remove the stack - ports, containers, images, NAT, bridge, empty directories"
STACK = "The stack - bridge, NAT, images, then every container's netns, veth, cgroup, rootfs, process, ports"


def cgroup_dirs(parent):
    """Every directory of ``parent`` beneath this process's own cgroup, per v1 hierarchy."""
    found = []
    for line in open("/proc/self/cgroup"):
        dummy, controllers, path = line.strip().split(":", 2)
        if not controllers or controllers.startswith("name="):
            continue
        base = "/sys/fs/cgroup/%s%s/%s" % (controllers.split(",")[0], path.rstrip("/"), parent)
        for root, dirs, dummy in os.walk(base):
            found += [os.path.join(root, d) for d in dirs] + ([root] if root == base else [])
    return sorted(found)


@pytest.fixture
def world(tmp_path):
    """Variables pointing every location of the collection into the sandbox and this test."""
    parent = "hbtest-%d" % os.getpid()
    data = tmp_path / "data"
    extra = {"prerequisites_install_packages": False, "handbuilt_data_dir": str(data),
             "handbuilt_cgroup_parent": parent, "handbuilt_cgroup_relative_to_pid": os.getpid()}
    yield extra
    left = cgroup_dirs(parent)
    remove_cgroups(left)  # never leak, even when the test failed half-way
    assert left == [], "cgroups left behind"


def remove_cgroups(dirs):
    """Kill what this test started inside its own cgroups, then remove them (deepest first)."""
    for path in dirs:
        for pid in open(os.path.join(path, "cgroup.procs")).read().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    for path in sorted(dirs, key=len, reverse=True):
        for dummy in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


def host_snapshot(extra):
    state = snapshot()
    state["cgroups"] = cgroup_dirs(extra["handbuilt_cgroup_parent"])
    state["mounts_all"] = sorted(line.split()[1] for line in open("/proc/mounts")
                                 if line.split()[0] == "overlay")
    data = extra["handbuilt_data_dir"]
    state["data"] = sorted(os.listdir(data)) if os.path.isdir(data) else None
    return state


def http_get(url, tries=20):
    for dummy in range(tries):
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.25)
    raise AssertionError("no answer from %s" % url)


def memory_limit(parent, name):
    for path in cgroup_dirs(parent):
        if "/memory/" in path and path.endswith("/" + name):
            return int(open(os.path.join(path, "memory.limit_in_bytes")).read())
    raise AssertionError("no memory cgroup for %s" % name)


def test_build_rerun_check_change_teardown(ansible, world):
    before = host_snapshot(world)
    check = ansible.playbook(BUILD, check=True, diff=True, extra_vars=world)
    assert check.rc == 0, check
    assert check.changed > 0
    assert host_snapshot(world) == before, "check mode changed the host"

    first = ansible.playbook(BUILD, extra_vars=world)
    assert first.rc == 0, first
    stack = first.result(STACK)["containers"]
    web, client = stack["web"]["address"], stack["client"]["address"]
    assert ping(web, netns="client") and ping(client, netns="web")
    # One task made the bridge, its NAT and the image before the containers.
    commands = first.result(STACK)["commands"]
    assert commands.index("ip link add br0 type bridge") < commands.index("ip netns add web")
    ruleset = sh("nft", "list", "ruleset")
    assert "ip saddr 10.10.0.0/24" in ruleset and "masquerade" in ruleset
    assert first.result(STACK)["images"]["busybox"]["changed"] is True
    summary = first.result("Summary, one line per container")["msg"]
    assert summary[0].startswith("web: %s, running, pid " % web) and "memory 64M" in summary[0], summary
    # The published port answers from the host itself and from a container.
    assert "hello from a hand-built container" in http_get("http://127.0.0.1:8080/")
    assert "hello" in sh("ip", "netns", "exec", "client", "wget", "-qO-", "http://%s/" % web)
    # Hairpin: web reaches its own published port through the bridge.
    assert "hello" in sh("ip", "netns", "exec", "web", "wget", "-qO-", "http://10.10.0.1:8080/")
    # The kernel holds the declared limits; the container's PID 1 is its own.
    assert memory_limit(world["handbuilt_cgroup_parent"], "web") == 64 << 20
    web_pid = stack["web"]["container"]["container"]["pid"]
    assert sh("nsenter", "-t", str(web_pid), "-p", "-m", "cat", "/proc/1/comm").strip() in ("tini", "init")
    assert sh("nsenter", "-t", str(web_pid), "-u", "hostname").strip() == "web"

    again = ansible.playbook(BUILD, extra_vars=world)
    assert again.rc == 0 and again.changed == 0, again
    assert ansible.playbook(BUILD, check=True, extra_vars=world).changed == 0

    # One container's memory limit changes: its cgroup only, nobody restarts.
    with open(os.path.join(conftest.REPO, "roles/handbuilt/defaults/main.yml")) as fh:
        containers = yaml.safe_load(fh)["handbuilt_containers"]
    for c in containers:
        if c["name"] == "client":
            c["memory"] = "48M"
    changed = ansible.playbook(BUILD, diff=True, extra_vars=dict(world, handbuilt_containers=containers))
    assert changed.rc == 0 and changed.changed == 1, changed
    result = changed.result(STACK)["containers"]
    assert result["client"]["commands"] and all("memory" in c for c in result["client"]["commands"])
    assert not result["web"]["changed"]
    assert result["web"]["container"]["container"]["pid"] == web_pid
    # compose reports what it converges, not live figures (cgroup_info, container_info do).
    assert "stats" not in result["web"]["cgroup"]["cgroup"]
    assert "limits" not in result["web"]["container"]["container"]
    assert memory_limit(world["handbuilt_cgroup_parent"], "client") == 48 << 20

    # Check mode on the built host predicts past what the run itself stops and unmounts
    # first (the processes, then their overlays, then the image they used).
    built = host_snapshot(world)
    check_down = ansible.playbook(TEARDOWN, check=True, extra_vars=world)
    assert check_down.rc == 0 and check_down.changed > 0, check_down
    assert host_snapshot(world) == built, "check mode changed the host"
    down = ansible.playbook(TEARDOWN, extra_vars=world)
    assert down.rc == 0 and down.changed > 0, down
    assert host_snapshot(world) == before
    assert ansible.playbook(TEARDOWN, extra_vars=world).changed == 0
    # ... and predicts what the run did (the state dir's emptiness it cannot know).
    predicted, done = (
        [x for x in run.result(REMOVE)["commands"] if x != "rmdir /run/handbuilt"]
        for run in (check_down, down))
    assert predicted == done, "\n".join(["PREDICTED"] + predicted + ["DONE"] + done)


def test_the_built_collection_runs_as_users_install_it(ansible, world, tmp_path):
    """The tarball ansible-galaxy builds from this tree (galaxy.yml's build_ignore), installed,
    runs its playbooks by name with Ansible's defaults - no repository ansible.cfg, so no
    pipelining: each module goes through a temp file on the host."""
    dist, installed = tmp_path / "dist", tmp_path / "installed"
    (tmp_path / "empty.cfg").write_text("")
    users = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_CONFIG": str(tmp_path / "empty.cfg")}

    def galaxy(*args):
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-galaxy"), "collection"]
                       + list(args), env=dict(os.environ, **users), capture_output=True, check=True)
    galaxy("build", "--output-path", str(dist), conftest.REPO)
    tarball, = dist.glob("handbuilt-containers-*.tar.gz")
    names = tarfile.open(tarball).getnames()
    assert "plugins/modules/compose.py" in names and "playbooks/build_container.yml" in names
    assert not [n for n in names if n.split("/")[0] in (".venv", ".venv-oldest", ".collections", ".git")
                or "__pycache__" in n or n.startswith("bench/results/")], names
    galaxy("install", "-p", str(installed), str(tarball))
    here = dict(world, ansible_connection="local")

    first = ansible.playbook("handbuilt.containers.build_container", inventory="localhost,",
                             extra_vars=here, env=users)
    assert first.rc == 0 and first.changed == 1, first
    web = first.result(STACK)["containers"]["web"]["address"]
    assert ping(web, netns="client")
    again = ansible.playbook("handbuilt.containers.build_container", inventory="localhost,",
                             extra_vars=here, env=users, verbosity=3)
    assert again.rc == 0 and again.changed == 0, again
    assert "AnsiballZ_compose.py" in again.output  # put in a temp dir: not piped
    down = ansible.playbook("handbuilt.containers.teardown", inventory="localhost,",
                            extra_vars=here, env=users)
    assert down.rc == 0 and down.changed == 1, down
    assert snapshot() == conftest.EMPTY


def test_network_only_containers_keep_addresses(ansible, world):
    two = {"handbuilt_containers": [{"name": "a"}, {"name": "b"}]}
    first = ansible.playbook(BUILD, extra_vars=dict(world, **two))
    assert first.rc == 0, first
    three = {"handbuilt_containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}
    second = ansible.playbook(BUILD, extra_vars=dict(world, **three))
    assert second.rc == 0, second
    before, after = first.result(STACK)["containers"], second.result(STACK)["containers"]
    assert before["a"]["address"] == after["a"]["address"]
    assert before["b"]["address"] == after["b"]["address"]
    assert after["c"]["address"] not in (after["a"]["address"], after["b"]["address"])
    assert "hb-c" in sh("ip", "-br", "link")
    # Teardown deletes each namespace and lets the kernel take the veth with it (one batch),
    # then waits for the host ends: check mode predicts exactly what the real run does.
    check = ansible.playbook(TEARDOWN, check=True, extra_vars=dict(world, **three))
    down = ansible.playbook(TEARDOWN, extra_vars=dict(world, **three))
    assert down.rc == 0, down
    removed = down.result(REMOVE)
    # (check mode cannot know whether the state dir will be empty: everything but that line)
    assert [x for x in removed["commands"] if x != "rmdir /run/handbuilt"] == \
        [x for x in check.result(REMOVE)["commands"] if x != "rmdir /run/handbuilt"]
    c = removed["containers"]["c"]
    assert "ip netns del c" in c["commands"] and not [x for x in c["commands"] if "link del" in x]
    assert c["changed"] and c["veth"]["changed"] and c["veth"]["veth"] is None
    assert "ip link del br0" in removed["commands"]  # after the host ends were gone
    assert snapshot() == conftest.EMPTY


def test_rerun_repairs_containers_broken_after_ones_that_are_fine(ansible, world):
    """compose reads links from one dump until its first write; containers after a
    repaired one must still be read from the kernel, in check mode and for real."""
    three = dict(world, handbuilt_containers=[{"name": n} for n in ("a", "b", "c", "d")])
    assert ansible.playbook(BUILD, extra_vars=three).rc == 0
    sh("ip", "link", "set", "hb-b", "nomaster")   # b: off the bridge and down
    sh("ip", "link", "set", "hb-b", "down")
    sh("ip", "link", "del", "hb-c")               # c: its cable gone (both ends)
    sh("ip", "-n", "d", "addr", "flush", "dev", "eth0")  # d: no address, no route

    check = ansible.playbook(BUILD, check=True, extra_vars=three)
    fix = ansible.playbook(BUILD, extra_vars=three)
    assert fix.rc == 0 and fix.changed == 1, fix
    stack = fix.result(STACK)["containers"]
    assert not stack["a"]["changed"]
    assert stack["b"]["commands"] == ["ip link set hb-b master br0",
                                      "ip link set hb-b type bridge_slave hairpin on",
                                      "ip link set hb-b up"]
    assert stack["c"]["commands"][0].startswith("ip link add hb-c type veth peer name eth0 netns c")
    assert [x.split(" broadcast")[0] for x in stack["d"]["commands"]] == [
        "ip netns exec d ip addr add %s/24" % stack["d"]["address"],
        "ip netns exec d ip route replace default via 10.10.0.1"]
    assert check.result(STACK)["commands"] == fix.result(STACK)["commands"]
    for name in "abcd":
        assert ping(stack[name]["address"], netns="a" if name != "a" else "b")
    assert ansible.playbook(BUILD, extra_vars=three).changed == 0
    assert ansible.playbook(TEARDOWN, extra_vars=three).rc == 0
    assert snapshot() == conftest.EMPTY


def shim_processes():
    """pid -> command line of every process running a container shim."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if any(a == b"shim.py" or a.endswith(b"/shim.py") for a in args):
            found[int(pid)] = [a.decode() for a in args if a]
    return found


def test_containers_start_from_one_launcher_that_does_not_stay(ansible, world):
    """compose forks every supervisor from one launcher: a container that cannot start
    fails the run naming its error, the others run, and no launcher is left behind."""
    sleepers = [{"name": n, "image": "busybox", "command": ["/bin/sleep", "1000"]}
                for n in ("a", "b", "c")]
    broken = sleepers + [{"name": "bad", "image": "busybox", "command": ["/no/such/binary"],
                          "init": False}]  # no init in between: exec itself fails
    run = ansible.playbook(BUILD, extra_vars=dict(world, handbuilt_containers=broken))
    assert run.rc != 0 and "/no/such/binary" in run.output, run

    good = ansible.playbook(BUILD, extra_vars=dict(world, handbuilt_containers=sleepers))
    assert good.rc == 0, good
    stack = good.result(STACK)["containers"]
    shims = set()
    for name in "abc":
        with open(os.path.join(stack[name]["container"]["container"]["state_dir"], "state.json")) as fh:
            shims.add(json.load(fh)["shim_pid"])
    running = shim_processes()
    assert set(running) == shims  # the supervisors, and nothing else
    # Forked by one launcher, each shows its own container, as ps users expect.
    for name in "abc":
        pid = [p for p in shims if stack[name]["container"]["container"]["state_dir"] in running[p]]
        assert len(pid) == 1, running
    for name in "abc":
        pid = stack[name]["container"]["container"]["pid"]
        assert sh("nsenter", "-t", str(pid), "-u", "hostname").strip() == name
    assert ansible.playbook(BUILD, extra_vars=dict(world, handbuilt_containers=sleepers)).changed == 0
    assert ansible.playbook(TEARDOWN, extra_vars=dict(world, handbuilt_containers=broken)).rc == 0
    assert shim_processes() == {}
    assert snapshot() == conftest.EMPTY


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_teardown_check_predicts_the_firewall_after_the_ports_go(ansible, world, backend):
    """Teardown removes the published ports, then the NAT: in check mode the NAT's plan is
    made from what the ports' removal leaves (emptied chains and table, released claims)."""
    extra = dict(world, handbuilt_firewall_backend=backend,
                 handbuilt_containers=[{"name": "a", "ports": [{"host": 8080, "container": 80}]},
                                       {"name": "b"}])
    assert ansible.playbook(BUILD, extra_vars=extra).rc == 0
    check = ansible.playbook(TEARDOWN, check=True, extra_vars=extra)
    down = ansible.playbook(TEARDOWN, extra_vars=extra)
    assert check.rc == 0 and down.rc == 0, (check, down)
    predicted, done = (
        [x for x in run.result(REMOVE)["commands"] if x != "rmdir /run/handbuilt"]
        for run in (check, down))
    assert predicted == done, "\n".join(["PREDICTED"] + predicted + ["DONE"] + done)
    assert any("ip_forward=0" in x for x in done)  # the last claim restored the value
    left = snapshot()
    if backend == "iptables":  # iptables-nft leaves its (empty) base tables behind
        assert "handbuilt" not in left.pop("nft").lower()
        left["nft"] = conftest.EMPTY["nft"]
    assert left == conftest.EMPTY


def test_bad_declarations_fail_before_anything_changes(ansible, world):
    cases = [
        ({"handbuilt_containers": [{"name": "a"}, {"name": "a"}]}, "declared twice"),
        ({"handbuilt_containers": [{"name": "a", "address": "10.10.0.7"},
                                   {"name": "b", "address": "10.10.0.7"}]}, "also the address"),
        ({"handbuilt_containers": [{"name": "a", "address": "10.99.0.7"}]}, "not a host address"),
        ({"handbuilt_containers": [{"name": "much-too-long-name"}]}, "longer than 12"),
        ({"handbuilt_containers": [{"name": "a", "command": ["sleep", "1"], "memory": "50X"}]},
         "containers[0].memory: '50X' is not a size"),
        ({"handbuilt_containers": [{"name": "a", "command": []}]}, "command"),
        ({"handbuilt_containers": [{"name": "a", "cpus": 0}]}, "above 0"),
        ({"handbuilt_containers": [{"name": "a", "ports": [{"host": 80, "container": 80}]},
                                   {"name": "b", "ports": [{"host": 80, "container": 81}]}]},
         "tcp port 80 is also published by a"),
    ]
    for extra, message in cases:
        run = ansible.playbook(BUILD, extra_vars=dict(world, **extra))
        # The message from the result, not the screen: the yaml callback of older cores wraps it.
        assert run.rc != 0 and message in run.tasks[-1]["result"].get("msg", ""), (extra, run)
        # Refused on the controller, before any module ran on the host.
        assert run.tasks[-1]["task"].endswith("Validate the declared network, images and containers")
        assert snapshot() == conftest.EMPTY, extra


def test_payload_cache_kept_across_runs(ansible, tmp_path):
    """Every module runs through the run_module action: its AnsiballZ payload is built once
    and reused by the next ansible-playbook run, and only from a private directory."""
    cache = tmp_path / "payloads"
    env = {"HANDBUILT_PAYLOAD_CACHE": str(cache)}
    tasks = [{"name": "read the host", "handbuilt.containers.host_info": {},
              "register": "host"},
             {"ansible.builtin.assert": {"that": ["host.features is defined"]}}]

    first = ansible.tasks(tasks, env=env, verbosity=3)
    assert first.rc == 0, first
    assert "handbuilt payload cache: host_info saved in %s" % cache in first.output
    saved = [name for name in os.listdir(cache) if name != "bytecode"]
    assert len(saved) == 1 and saved[0].startswith("host_info-")
    assert os.listdir(cache / saved[0])[0].startswith(
        "ansible_collections.handbuilt.containers.plugins.modules.host_info-")

    second = ansible.tasks(tasks, env=env, verbosity=3)
    assert second.rc == 0, second
    assert "handbuilt payload cache: host_info restored from %s" % cache in second.output
    assert "saved in" not in second.output

    cache.chmod(0o777)  # anyone could plant code there: not used, and nothing fails
    third = ansible.tasks(tasks, env=env, verbosity=3)
    assert third.rc == 0, third
    assert "is not a private directory, not used" in third.output
    assert "restored from" not in third.output

    off = ansible.tasks(tasks, env={"HANDBUILT_PAYLOAD_CACHE": "off"}, verbosity=3)
    assert off.rc == 0 and "handbuilt payload cache" not in off.output, off


def test_bytecode_made_once_by_the_local_interpreter(ansible, tmp_path):
    """On the local connection, the module's payload carries bytecode the target's own
    interpreter compiled (zipimport then compiles nothing); it is made once and reused, with
    or without pipelining (which has the interpreter read its stdin at once, STDIN_RUNNER)."""
    cache = tmp_path / "payloads"
    env = {"HANDBUILT_PAYLOAD_CACHE": str(cache)}
    tasks = [{"name": "read the host", "handbuilt.containers.host_info": {},
              "register": "host"},
             {"ansible.builtin.assert": {"that": ["host.missing == []"]}}]

    first = ansible.tasks(tasks, env=env, verbosity=3)
    assert first.rc == 0, first
    assert "handbuilt bytecode: host_info-" in first.output and "made in" in first.output
    entries = os.listdir(cache / "bytecode")
    assert len(entries) == 1 and entries[0].startswith("host_info-")
    saved = (cache / "bytecode" / entries[0]).read_bytes()
    payload = zipfile.ZipFile(io.BytesIO(base64.b64decode(saved)))
    pycs = [n for n in payload.namelist() if n.endswith(".pyc")]
    assert "ansible/module_utils/basic.pyc" in pycs
    assert len(pycs) == len([n for n in payload.namelist() if n.endswith(".py")])
    magic = subprocess.run([ansible.python, "-c", "import importlib.util, sys;"
                            "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                           capture_output=True, text=True, check=True).stdout
    assert {payload.read(n)[:4].hex() for n in pycs} == {magic}

    second = ansible.tasks(tasks, env=env, verbosity=3)
    assert second.rc == 0 and "read from" in second.output and "made in" not in second.output

    for pipelining in ("false", "true"):
        run = ansible.tasks(tasks, env=dict(env, ANSIBLE_PIPELINING=pipelining), verbosity=3)
        assert run.rc == 0 and "handbuilt bytecode: host_info-" in run.output, run
        assert ("exec(compile(sys.stdin.buffer.read()" in run.output) == (pipelining == "true"), run


def test_prerequisites_install_only_what_dpkg_lacks(ansible):
    """host_info reads dpkg's database, so the prerequisites role runs apt (seconds, on every
    run) only when a package is missing."""
    installed = ["iproute2", "python3-pyroute2"]  # the sandbox's own tests need them
    tasks = [{"name": "packages",
              "handbuilt.containers.host_info": {"packages": installed + ["handbuilt-no-such-package"]}},
             {"name": "bad name", "handbuilt.containers.host_info": {"packages": ["x; rm -rf /"]},
              "ignore_errors": True}]
    run = ansible.tasks(tasks)
    found = run.result("packages")
    assert set(found["packages"]) == set(installed) and found["packages_missing"] == [
        "handbuilt-no-such-package"]
    assert "not Debian package names" in run.result("bad name")["msg"]

    role = [{"name": "prerequisites", "ansible.builtin.include_role": {
        "name": "handbuilt.containers.prerequisites"}}]
    again = ansible.tasks(role, extra_vars={"prerequisites_packages": installed})
    assert again.rc == 0 and again.changed == 0, again
    assert [t["status"] for t in again.tasks if "Install the packages" in t["task"]] == ["skipped"]


def test_a_module_run_as_a_user_says_to_become_root_and_changes_nothing(ansible):
    """A fleet reached as a sudo user without become: each module stops before it reads the
    kernel, naming the uid and the fix, instead of a bare EPERM halfway; host_info, which only
    reads, still answers."""
    as_nobody = {"become": True, "become_user": "nobody", "become_method": "ansible.builtin.su",
                 "become_flags": "-s /bin/sh", "vars": {"ansible_pipelining": True},
                 "ignore_errors": True}
    tasks = [dict(as_nobody, name="netns", **{"handbuilt.containers.netns": {"name": "hbuser"}}),
             dict(as_nobody, name="compose", **{"handbuilt.containers.compose": {
                 "bridge": "hbuser0", "subnet": "10.77.0.0/24", "containers": [{"name": "hbuser"}]}}),
             dict(as_nobody, name="cgroup", **{"handbuilt.containers.cgroup": {
                 "name": "hbuser", "memory_max": "32M", "relative_to_pid": os.getpid()}}),
             dict(as_nobody, name="exec", **{"handbuilt.containers.container_exec": {
                 "name": "hbuser", "command": ["true"]}}),
             dict(as_nobody, name="info", **{"handbuilt.containers.container_info": {}}),
             dict(as_nobody, name="packages", **{"handbuilt.containers.host_info": {
                 "packages": ["iproute2"]}})]
    before = snapshot()
    run = ansible.tasks(tasks)
    for name in ("netns", "compose", "cgroup", "exec", "info"):
        msg = run.result(name)["msg"]
        assert "run as root" in msg and "uid 65534" in msg and "become: true" in msg, msg
    assert "iproute2" in run.result("packages")["packages"]
    assert snapshot() == before


def test_teardown_needs_only_the_names(ansible, world):
    """A container removed by name alone loses its process, rootfs and cgroup with its network:
    state=absent does not leave them behind because today's declaration has no command (the
    image then refused to go, in use by the still-mounted overlay)."""
    before = host_snapshot(world)
    full = dict(world, handbuilt_containers=[
        {"name": "a", "command": ["/bin/sleep", "2147483647"], "memory": "32M"}, {"name": "b"}])
    assert ansible.playbook(BUILD, extra_vars=full).rc == 0
    names = dict(world, handbuilt_containers=[{"name": "a"}, {"name": "b"}])
    built = host_snapshot(world)
    check = ansible.playbook(TEARDOWN, check=True, extra_vars=names)
    assert check.rc == 0 and check.changed > 0, check
    assert host_snapshot(world) == built, "check mode changed the host"
    down = ansible.playbook(TEARDOWN, extra_vars=names)
    assert down.rc == 0, down
    assert host_snapshot(world) == before
    assert ansible.playbook(TEARDOWN, extra_vars=names).changed == 0
