# -*- coding: utf-8 -*-
"""masquerade and port_forward on the real kernel, inside the sandbox (seed Q8 and seed 004).

The world: the sandbox namespace is the "host", with br0 10.10.0.1/24 and two
containers c1 (10.10.0.2) and c2 (10.10.0.3); an "outside" namespace hangs off
the host by a veth (192.168.99.1 <-> 192.168.99.2) and has no route back to
10.10.0.0/24. Every test runs per backend: nftables, iptables (nf_tables
flavour) and iptables-legacy (picked by the detection because the host's
existing rules live in the legacy tables).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
from conftest import ping, sh

M = "handbuilt.containers."
HOST_OUT = "192.168.99.1"
OUTSIDE = "192.168.99.2"
BACKENDS = ["nftables", "iptables", "iptables-legacy"]

SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
while True:
    c, a = s.accept()
    c.sendall(("%s %s\n" % (sys.argv[2], a[0])).encode())
    c.close()
"""

CLIENT = r"""
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(s.recv(200).decode().strip())
except OSError as exc:
    print("ERR %s" % exc)
"""


def ipt(backend):
    """The iptables command a test uses to set up the host's own (foreign) rules."""
    return "iptables-legacy" if backend == "iptables-legacy" else "iptables"


def module_backend(backend):
    return "iptables" if backend.startswith("iptables") else backend


def legacy_loaded():
    try:
        return open("/proc/net/ip_tables_names").read().split()
    except OSError:
        return []


def reset_firewall():
    for table in legacy_loaded():
        subprocess.run(["iptables-legacy", "-t", table, "-F"], capture_output=True, check=False)
        subprocess.run(["iptables-legacy", "-t", table, "-X"], capture_output=True, check=False)
        for chain in ("FORWARD", "INPUT", "OUTPUT"):
            subprocess.run(["iptables-legacy", "-t", table, "-P", chain, "ACCEPT"], capture_output=True, check=False)
    subprocess.run(["nft", "flush", "ruleset"], capture_output=True, check=False)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as fh:
        fh.write("0\n")


@pytest.fixture(autouse=True)
def clean_firewall():
    reset_firewall()
    yield
    reset_firewall()


def build_world():
    sh("ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "addr", "add", "10.10.0.1/24", "dev", "br0")
    sh("ip", "link", "set", "br0", "up")
    for n in (1, 2):
        ns = "c%d" % n
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", "v%d-br" % n, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", "v%d-br" % n, "master", "br0", "up")
        sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "addr", "add", "10.10.0.%d/24" % (n + 1), "dev", "eth0", netns=ns)
        sh("ip", "link", "set", "eth0", "up", netns=ns)
        sh("ip", "route", "add", "default", "via", "10.10.0.1", netns=ns)
    sh("ip", "netns", "add", "out")
    sh("ip", "link", "add", "hb-out", "type", "veth", "peer", "name", "eth0", "netns", "out")
    sh("ip", "addr", "add", HOST_OUT + "/24", "dev", "hb-out")
    sh("ip", "link", "set", "hb-out", "up")
    sh("ip", "link", "set", "lo", "up", netns="out")
    sh("ip", "addr", "add", OUTSIDE + "/24", "dev", "eth0", netns="out")
    sh("ip", "link", "set", "eth0", "up", netns="out")
    assert ping("10.10.0.2") and ping(OUTSIDE), "world not built"


@pytest.fixture
def servers():
    """Start TCP servers that answer '<label> <peer address>'; all killed afterwards."""
    procs = []

    def start(netns, port, label, probe):
        argv = ["ip", "netns", "exec", netns, "timeout", "90", sys.executable, "-c", SERVER,
                str(port), label]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 5
        while time.time() < deadline:
            if connect(probe, port, netns=netns, timeout=0.5).startswith(label):
                return
            time.sleep(0.05)
        raise AssertionError("server %s:%d in %s did not start" % (probe, port, netns))

    yield start
    for proc in procs:
        proc.terminate()  # SIGTERM: timeout(1) passes it on to the server
        proc.wait()


def connect(address, port, netns=None, timeout=1.0):
    """Open TCP to address:port (from netns, or from the host); the server's line or 'ERR ...'."""
    if netns is None:
        try:
            with socket.create_connection((address, port), timeout=timeout) as s:
                return s.recv(200).decode().strip()
        except OSError as exc:
            return "ERR %s" % exc
    out = sh(sys.executable, "-c", CLIENT, address, str(port), str(timeout), netns=netns)
    return out.strip()


def foreign_setup(backend):
    """The host's own firewall before the collection arrives: FORWARD policy DROP (as Docker
    leaves it), a foreign rule in the nat POSTROUTING hook and one in FORWARD."""
    tool = ipt(backend)
    sh(tool, "-P", "FORWARD", "DROP")
    sh(tool, "-A", "FORWARD", "-s", "198.51.100.0/24", "-j", "ACCEPT")
    sh(tool, "-t", "nat", "-A", "POSTROUTING", "-d", "203.0.113.0/24", "-j", "RETURN")
    if backend == "nftables":
        # and a native nftables table with a chain on the same nat hook
        sh("nft", "add", "table", "ip", "foreign")
        sh("nft", "add", "chain", "ip", "foreign", "post",
           "{ type nat hook postrouting priority 50; policy accept; }")
        sh("nft", "add", "rule", "ip", "foreign", "post", "ip", "daddr", "203.0.113.7", "return")


def foreign_rules():
    """The firewall as seen without the collection: every rule and policy not ours."""
    state = {}
    for tool in ("iptables-nft-save", "iptables-legacy-save"):
        out = subprocess.run([tool], capture_output=True, text=True, check=False).stdout
        lines = [re.sub(r"\s*\[\d+:\d+\]", "", l) for l in out.splitlines()
                 if l.startswith("-A") or (l.startswith(":") and not l.endswith("ACCEPT [0:0]")
                                           and " ACCEPT " not in l)]
        state[tool] = sorted(l for l in lines)
    state["foreign_nft"] = subprocess.run(["nft", "-s", "list", "table", "ip", "foreign"],
                                          capture_output=True, text=True, check=False).stdout
    return state


def raw_firewall():
    """Everything, for 'nothing changed at all' comparisons."""
    out = {}
    out["nft"] = subprocess.run(["nft", "-s", "list", "ruleset"], capture_output=True, text=True, check=False).stdout
    out["legacy"] = re.sub(r"^#.*$|\[\d+:\d+\]", "", subprocess.run(
        ["iptables-legacy-save"], capture_output=True, text=True, check=False).stdout, flags=re.M)
    out["ip_forward"] = open("/proc/sys/net/ipv4/ip_forward").read()
    out["route_localnet"] = open("/proc/sys/net/ipv4/conf/br0/route_localnet").read()
    out["state"] = sorted(os.walk("/run/handbuilt"))
    return out


def masq(backend, state="present", **kw):
    args = dict(source="10.10.0.0/24", exclude_interface="br0", backend=module_backend(backend),
                state=state)
    args.update(kw)
    return {"name": "masquerade %s" % state, M + "masquerade": args}


def pf(backend, state="present", **kw):
    args = dict(name="web", host_port=8080, destination="10.10.0.2:80",
                backend=module_backend(backend), state=state)
    args.update(kw)
    return {"name": "port_forward %s" % state, M + "port_forward": args}


def no_collection_rules():
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=False).stdout
    legacy = subprocess.run(["iptables-legacy-save"], capture_output=True, text=True, check=False).stdout
    return "handbuilt" not in nft.lower() and "HANDBUILT" not in legacy


# ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_masquerade_reaches_outside_only_while_present(ansible, servers, backend):
    build_world()
    foreign_setup(backend)
    before_foreign = foreign_rules()
    servers("out", 7000, "outside", OUTSIDE)
    assert not ping(OUTSIDE, netns="c1")
    assert connect(OUTSIDE, 7000, netns="c1", timeout=0.5).startswith("ERR")

    # check mode: predicts, changes nothing
    raw = raw_firewall()
    check = ansible.tasks([masq(backend)], check=True, diff=True)
    assert check.rc == 0 and check.changed == 1, check
    assert raw_firewall() == raw
    predicted = check.result("masquerade present")

    run = ansible.tasks([masq(backend), dict(masq(backend), name="again")], diff=True)
    assert run.rc == 0 and run.changed == 1, run
    result = run.result("masquerade present")
    # idempotent: the second task of the same play changes nothing
    assert run.result("again")["changed"] is False and run.result("again")["commands"] == []
    assert result["commands"] == predicted["commands"]
    assert result["diff"]["after"] == predicted["diff"]["after"]
    assert result["backend"] == module_backend(backend)
    assert result["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert "sysctl -w net.ipv4.ip_forward=1" in result["commands"]
    if backend == "nftables":
        assert ('nft add rule inet handbuilt postrouting ip saddr 10.10.0.0/24 oifname != "br0" '
                'masquerade comment "handbuilt.containers/masquerade/10.10.0.0-24/'
                in " ".join(result["commands"]))
        # the FORWARD drop lives in iptables' filter table: the accept goes there
        assert any(c.startswith("iptables -t filter -I FORWARD 1") for c in result["commands"])
        assert result["iptables_variant"] is None
    else:
        tool = ipt(backend)
        assert result["iptables_variant"] == ("legacy" if backend == "iptables-legacy" else "nf_tables")
        assert any(c.startswith(tool + " -t nat -A HANDBUILT-POSTROUTING -s 10.10.0.0/24 '!' -o br0")
                   for c in result["commands"]), result["commands"]
        save = sh(tool + "-save")
        assert "-A POSTROUTING -m comment --comment handbuilt.containers -j HANDBUILT-POSTROUTING" \
            in save.replace('"', "")
        assert re.search(r"-A FORWARD -m comment --comment \"?handbuilt.containers\"? -j HANDBUILT-FORWARD\n"
                         r"-A FORWARD -s 198.51.100.0/24 -j ACCEPT", save), save
    if backend == "iptables-legacy":
        assert "handbuilt" not in sh("nft", "list", "ruleset").lower()  # never mixed
        assert any("legacy" in w for w in result.get("warnings", []))

    # the kernel agrees: the outside sees the host's address, FORWARD DROP notwithstanding
    assert ping(OUTSIDE, netns="c1") and ping(OUTSIDE, netns="c2")
    assert connect(OUTSIDE, 7000, netns="c1") == "outside " + HOST_OUT
    assert connect(OUTSIDE, 7000, netns="c2") == "outside " + HOST_OUT
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    assert ping("10.10.0.3", netns="c1")  # the bridge itself is not masqueraded

    down = ansible.tasks([masq(backend, state="absent"),
                          dict(masq(backend, state="absent"), name="again")], diff=True)
    assert down.rc == 0 and down.changed == 1, down
    assert down.result("masquerade absent")["diff"]["after"] == {"state": "absent"}
    assert "sysctl -w net.ipv4.ip_forward=0" in down.result("masquerade absent")["commands"]
    assert not ping(OUTSIDE, netns="c1")
    assert connect(OUTSIDE, 7000, netns="c1", timeout=0.5).startswith("ERR")
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "0"
    assert foreign_rules() == before_foreign
    assert no_collection_rules()
    assert os.listdir("/run/handbuilt") == []
    assert down.result("again")["changed"] is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_port_forward_from_outside_host_and_hairpin(ansible, servers, backend):
    build_world()
    foreign_setup(backend)
    before_foreign = foreign_rules()
    servers("c1", 80, "c1", "10.10.0.2")
    assert connect(HOST_OUT, 8080, netns="out", timeout=0.5).startswith("ERR")
    assert connect("127.0.0.1", 8080, timeout=0.5).startswith("ERR")

    raw = raw_firewall()
    check = ansible.tasks([pf(backend)], check=True)
    assert check.rc == 0 and check.changed == 1, check
    assert raw_firewall() == raw

    run = ansible.tasks([pf(backend), dict(pf(backend), name="again")])
    assert run.rc == 0 and run.changed == 1, run
    assert run.result("again")["changed"] is False
    result = run.result("port_forward present")
    assert result["commands"] == check.result("port_forward present")["commands"]
    assert result["sysctl"] == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.br0.route_localnet": "1"}
    if backend == "nftables":
        assert any("add rule inet handbuilt prerouting fib daddr type local tcp dport 8080 "
                   "dnat ip to 10.10.0.2:80" in c for c in result["commands"])
    # from the outside: the container sees the outside's own address (DNAT only)
    assert connect(HOST_OUT, 8080, netns="out") == "c1 " + OUTSIDE
    # from the host itself: loopback and the host's addresses
    assert connect("127.0.0.1", 8080).startswith("c1 ")
    assert connect(HOST_OUT, 8080).startswith("c1 ")
    assert connect("10.10.0.1", 8080).startswith("c1 ")
    # hairpin: a neighbour, and the container itself, through the published port
    assert connect("10.10.0.1", 8080, netns="c2") == "c1 10.10.0.1"
    # A container reaching its *own* published port: with br_netfilter active
    # (bridge-nf-call-iptables, as here) the DNATed frame is bridged back out of the
    # port it came in on, which the bridge only does with hairpin mode on that port
    # (what Docker sets). The port belongs to the veth/bridge modules; set it by hand.
    if open("/proc/sys/net/bridge/bridge-nf-call-iptables").read().strip() == "1" \
            if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables") else False:
        sh("ip", "link", "set", "v1-br", "type", "bridge_slave", "hairpin", "on")
    assert connect(HOST_OUT, 8080, netns="c1") == "c1 10.10.0.1"
    assert open("/proc/sys/net/ipv4/conf/br0/route_localnet").read().strip() == "1"

    down = ansible.tasks([pf(backend, state="absent"), dict(pf(backend, state="absent"), name="again")])
    assert down.rc == 0 and down.changed == 1, down
    assert connect(HOST_OUT, 8080, netns="out", timeout=0.5).startswith("ERR")
    assert connect("127.0.0.1", 8080, timeout=0.5).startswith("ERR")
    assert open("/proc/sys/net/ipv4/conf/br0/route_localnet").read().strip() == "0"
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "0"
    assert foreign_rules() == before_foreign
    assert no_collection_rules()
    assert down.result("again")["changed"] is False


def test_many_resources_share_the_table_and_ip_forward(ansible, servers):
    build_world()
    servers("c1", 80, "c1", "10.10.0.2")
    servers("c2", 53, "c2", "10.10.0.3")
    net2 = {"name": "masquerade lab", M + "masquerade": dict(source="10.20.0.0/24", name="lab")}
    ports = {"name": "dns", M + "port_forward": dict(name="dns", ports=[
        dict(host_port=5353, destination="10.10.0.3:53"),
        dict(host_port=5353, destination="10.10.0.3:53", protocol="udp"),
        dict(host_port=9053, host_address=HOST_OUT, destination="10.10.0.3:53")])}
    tasks = [masq("nftables"), net2, pf("nftables"), ports]
    first = ansible.tasks(tasks + [dict(t, name=t["name"] + " again") for t in tasks])
    assert first.rc == 0 and first.changed == 4, first
    assert all(not first.result(t["name"] + " again")["changed"] for t in tasks)
    # one module call, one transaction, however many ports
    assert len(first.result("dns")["rules"]) >= 9
    assert connect(HOST_OUT, 5353, netns="out") == "c2 " + OUTSIDE
    assert connect(HOST_OUT, 9053, netns="out") == "c2 " + OUTSIDE
    assert connect("10.10.0.1", 9053, netns="out", timeout=0.5).startswith("ERR")  # host_address

    # A firewall reload wipes everything: the next run repairs it.
    sh("nft", "flush", "ruleset")
    assert connect(HOST_OUT, 8080, netns="out", timeout=0.5).startswith("ERR")
    repair = ansible.tasks(tasks)
    assert repair.rc == 0 and repair.changed == 4, repair
    assert connect(HOST_OUT, 8080, netns="out") == "c1 " + OUTSIDE
    assert ping(OUTSIDE, netns="c1")

    # Drop one port from the list: only that mapping goes. Removing one resource
    # leaves the others' rules and the shared ip_forward alone.
    gone = ansible.tasks([{"name": "dns", M + "port_forward": dict(name="dns", ports=[
        dict(host_port=5353, destination="10.10.0.3:53")])}, masq("nftables", state="absent")])
    assert gone.rc == 0 and gone.changed == 2, gone
    assert connect(HOST_OUT, 9053, netns="out", timeout=0.5).startswith("ERR")
    assert connect(HOST_OUT, 5353, netns="out") == "c2 " + OUTSIDE
    assert not any(c.startswith("sysctl") for c in gone.result("masquerade absent")["commands"])
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    assert connect(HOST_OUT, 8080, netns="out") == "c1 " + OUTSIDE
    assert "10.20.0.0/24" in sh("nft", "list", "table", "inet", "handbuilt")
    rest = ansible.tasks([
        {"name": "a", M + "masquerade": dict(source="10.20.0.0/24", name="lab", state="absent")},
        {"name": "b", M + "port_forward": dict(name="web", state="absent")},
        {"name": "c", M + "port_forward": dict(name="dns", state="absent")}])
    assert rest.rc == 0 and rest.changed == 3, rest
    assert rest.result("c")["commands"][-2:] == ["sysctl -w net.ipv4.ip_forward=0",
                                                 "rm -f /run/handbuilt/sysctl/net.ipv4.ip_forward/original"]
    assert no_collection_rules()
    assert os.listdir("/run/handbuilt") == []


def test_ip_forward_already_on_is_left_on(ansible):
    build_world()
    with open("/proc/sys/net/ipv4/ip_forward", "w") as fh:
        fh.write("1\n")
    run = ansible.tasks([masq("nftables"), masq("nftables", state="absent")])
    assert run.rc == 0 and run.changed == 2, run
    for task in ("masquerade present", "masquerade absent"):
        assert not any(c.startswith("sysctl") for c in run.result(task)["commands"])
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"


BAD = [
    ("masquerade", dict(source="10.10.0.0/33"), "source"),
    ("masquerade", dict(source="10.10.0.1/24"), "source"),  # host bits set
    ("masquerade", dict(source="not-a-cidr"), "source"),
    ("masquerade", dict(source="fd00::/64"), "source"),
    ("masquerade", dict(source="10.10.0.0/24", backend="pf"), "backend"),
    ("masquerade", dict(source="10.10.0.0/24", exclude_interface="a/b"), "exclude_interface"),
    ("masquerade", dict(source="10.10.0.0/24", name="with space"), "name"),
    ("port_forward", dict(name="w", host_port=0, destination="10.10.0.2:80"), "host_port"),
    ("port_forward", dict(name="w", host_port=65536, destination="10.10.0.2:80"), "host_port"),
    ("port_forward", dict(name="w", host_port=8080, destination="10.10.0.2"), "destination"),
    ("port_forward", dict(name="w", host_port=8080, destination="10.10.0.2:0"), "destination"),
    ("port_forward", dict(name="w", host_port=8080, destination="10.10.0.2:70000"), "destination"),
    ("port_forward", dict(name="w", host_port=8080, destination="web:80"), "destination"),
    ("port_forward", dict(name="w", host_port=8080, destination="10.10.0.2:80", protocol="sctp"), "protocol"),
    ("port_forward", dict(name="w", host_port=8080, host_address="nowhere",
                          destination="10.10.0.2:80"), "host_address"),
    ("port_forward", dict(name="w", ports=[dict(host_port=1, destination="10.10.0.2:80"),
                                           dict(host_port=99999, destination="10.10.0.2:80")]),
     "ports[1].host_port"),
    ("port_forward", dict(name="w", ports=[dict(host_port=1, destination="10.10.0.2:80"),
                                           dict(host_port=1, destination="10.10.0.3:80")]),
     "ports[1].host_port"),
    ("port_forward", dict(name="w"), "host_port"),
]


def test_bad_input_fails_naming_the_parameter_and_changes_nothing(ansible):
    build_world()
    before = raw_firewall()
    tasks = [{"name": "case %d" % i, M + module: args, "ignore_errors": True}
             for i, (module, args, dummy) in enumerate(BAD)]
    # backend requested but not installed: no nft / iptables in this task's PATH
    tasks.append({"name": "no nft", M + "masquerade": dict(source="10.10.0.0/24", backend="nftables"),
                  "ignore_errors": True, "environment": {"PATH": "/usr/bin:/bin"}})
    tasks.append({"name": "no iptables", M + "port_forward": dict(
        name="w", host_port=1, destination="10.10.0.2:80", backend="iptables"),
        "ignore_errors": True, "environment": {"PATH": "/usr/bin:/bin"}})
    run = ansible.tasks(tasks)
    for i, (module, args, param) in enumerate(BAD):
        result = run.result("case %d" % i)
        assert result.get("failed"), (args, result)
        assert param in result["msg"], (args, param, result["msg"])
        assert result.get("changed") in (None, False)
    for name, package in (("no nft", "nftables"), ("no iptables", "iptables")):
        result = run.result(name)
        assert result["failed"] and "backend" in result["msg"], result
        assert "package %s" % package in result["msg"], result["msg"]
    assert raw_firewall() == before
