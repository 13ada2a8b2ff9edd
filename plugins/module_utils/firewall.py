# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NAT to the outside and published ports, on nftables or iptables.

The seed's Q8 by hand is ``sysctl -w net.ipv4.ip_forward=1`` plus
``iptables -t nat -A POSTROUTING -s 10.10.0.0/24 ! -o br0 -j MASQUERADE``.
This model does the same, owning only what it creates:

* nftables: the table ``inet handbuilt`` with base chains ``prerouting``,
  ``output``, ``postrouting`` (nat) and ``input`` (filter).
* iptables: chains ``HANDBUILT-PREROUTING``/``-OUTPUT``/``-POSTROUTING`` (nat)
  and ``HANDBUILT-FORWARD``/``-INPUT`` (filter), each entered from its built-in
  chain by one jump rule commented ``handbuilt.containers``.

Every rule carries the comment ``handbuilt.containers/<kind>/<name>/<digest>``:
the resource's identity plus a digest of the rule itself. Converging compares
comments only (robust against how each tool prints a rule), adds what is
missing, deletes what is stale and never touches a rule with another comment.
A chain (and the table) is removed when its last rule goes.

Rules are described once, backend-neutral (``Rule``), and rendered for nft or
iptables. The plan's steps show the hand commands (``nft add rule ...``,
``iptables -t nat -A ...``), but a run applies consecutive nft steps as one
``nft -f -`` transaction and consecutive iptables steps of one table as one
``iptables-restore --noflush`` commit: converging 50 published ports costs one
or two subprocesses, not 200.

FORWARD acceptance: with iptables the collection's own ``HANDBUILT-FORWARD``
chain is jumped to first in ``filter FORWARD``. With nftables an ``accept`` in
our table would not help - a drop in any other base chain on the same hook
still drops - so the accept rules go where the drop is: into
``HANDBUILT-FORWARD`` of each iptables flavour (nf_tables or legacy) whose
``filter FORWARD`` drops (policy DROP, as on Docker hosts, or a DROP/REJECT
rule). A native nftables chain of another table with ``policy drop`` on the
forward hook is reported as a warning with the rule to add there.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess

from ansible_collections.handbuilt.containers.plugins.module_utils import validate
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import (
    Op,
    PlanError,
    render,
    shell_quote,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import Resource
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput

OWNER = "handbuilt.containers"
NFT_FAMILY = "inet"
NFT_TABLE = "handbuilt"
BACKENDS = ("auto", "nftables", "iptables")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
LOOPBACK = "127.0.0.0/8"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Abstract chain -> (nft base chain declaration, iptables table, built-in chain, jump first?)
CHAINS = {
    "prerouting": ("type nat hook prerouting priority dstnat; policy accept;", "nat", "PREROUTING", False),
    "output": ("type nat hook output priority -100; policy accept;", "nat", "OUTPUT", False),
    "postrouting": ("type nat hook postrouting priority srcnat; policy accept;", "nat", "POSTROUTING", False),
    "input": ("type filter hook input priority filter; policy accept;", "filter", "INPUT", True),
    "forward": (None, "filter", "FORWARD", True),
}
CHAIN_ORDER = ("prerouting", "output", "postrouting", "input", "forward")
IPT_VARIANTS = ("nf_tables", "legacy")
IPT_TOOL = {"nf_tables": "iptables-nft", "legacy": "iptables-legacy"}


# ---------------------------------------------------------------------------
# Commands
class CommandError(Exception):
    def __init__(self, argv, rc, stderr):
        super().__init__("%s exited with %d: %s" % (render(argv), rc, (stderr or "").strip()))
        self.argv, self.rc, self.stderr = argv, rc, stderr


def find_bin(name):
    """Look a command up in PATH (a standard PATH when none is set)."""
    return shutil.which(name, path=os.environ.get("PATH") or DEFAULT_PATH)


def run(argv, stdin=None, check=True):
    # Not run_command: the models hold no AnsibleModule. An argv, never a shell.
    # pylint: disable-next=ansible-bad-function
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc


def display(tool, line):
    """A hand command: ``nft <line>``, quoted only when a shell would need it."""
    if all(c.isalnum() or c in ' @%+=:,./-_"!' for c in line):
        return "%s %s" % (tool, line)
    return "%s %s" % (tool, shell_quote(line))


# ---------------------------------------------------------------------------
# Rules, backend-neutral
class Rule:
    """One rule: matches plus a target, rendered for nft or iptables."""

    FIELDS = ("iif", "saddr", "daddr", "oif_not", "local_dst", "proto", "sport", "dport",
              "ct", "target", "to")

    def __init__(self, chain, target, **matches):
        if chain not in CHAINS or target not in ("masquerade", "accept", "drop", "dnat"):
            raise AssertionError("no rule %r in chain %r" % (target, chain))
        self.chain = chain
        self.values = dict(matches, target=target)
        unknown = set(self.values) - set(self.FIELDS)
        if unknown:
            raise AssertionError("unknown rule fields %s" % sorted(unknown))

    def get(self, key):
        return self.values.get(key)

    @property
    def digest(self):
        data = json.dumps([self.chain, sorted((k, v) for k, v in self.values.items() if v)])
        return hashlib.sha1(data.encode()).hexdigest()[:10]

    def nft(self):
        g = self.get
        words = []
        if g("iif"):
            words += ["iifname", '"%s"' % g("iif")]
        if g("saddr"):
            words += ["ip", "saddr", g("saddr")]
        if g("daddr"):
            words += ["ip", "daddr", g("daddr")]
        if g("oif_not"):
            words += ["oifname", "!=", '"%s"' % g("oif_not")]
        if g("local_dst"):
            words += ["fib", "daddr", "type", "local"]
        if g("proto"):
            if g("sport"):
                words += [g("proto"), "sport", str(g("sport"))]
            if g("dport"):
                words += [g("proto"), "dport", str(g("dport"))]
            if not g("sport") and not g("dport"):
                words += ["meta", "l4proto", g("proto")]
        ct = g("ct")
        if ct == "established":
            words += ["ct", "state", "established,related"]
        elif ct == "dnat":
            words += ["ct", "status", "dnat"]
        elif ct == "new-not-dnat":
            # (`ct state != established,related` would compare the whole bitmask)
            words += ["ct", "state", "new,invalid,untracked", "ct", "status", "!", "dnat"]
        words += {"masquerade": ["masquerade"], "accept": ["accept"], "drop": ["drop"],
                  "dnat": ["dnat", "ip", "to", str(g("to"))]}[g("target")]
        return " ".join(words)

    def iptables(self, comment=None):
        """iptables words (without -A CHAIN); the comment goes before the target."""
        g = self.get
        words = []
        if g("iif"):
            words += ["-i", g("iif")]
        if g("saddr"):
            words += ["-s", g("saddr")]
        if g("daddr"):
            words += ["-d", g("daddr")]
        if g("oif_not"):
            words += ["!", "-o", g("oif_not")]
        if g("proto"):
            words += ["-p", g("proto")]
        if g("local_dst"):
            words += ["-m", "addrtype", "--dst-type", "LOCAL"]
        if g("sport") or g("dport"):
            words += ["-m", g("proto")]
            if g("sport"):
                words += ["--sport", str(g("sport"))]
            if g("dport"):
                words += ["--dport", str(g("dport"))]
        ct = g("ct")
        if ct == "established":
            words += ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
        elif ct == "dnat":
            words += ["-m", "conntrack", "--ctstate", "DNAT"]
        elif ct == "new-not-dnat":
            words += ["-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT"]
        if comment:
            words += ["-m", "comment", "--comment", comment]
        words += {"masquerade": ["-j", "MASQUERADE"], "accept": ["-j", "ACCEPT"],
                  "drop": ["-j", "DROP"],
                  "dnat": ["-j", "DNAT", "--to-destination", str(g("to"))]}[g("target")]
        return words

    def __repr__(self):
        return "Rule(%s: %s)" % (self.chain, self.nft())


def comment_of(words):
    """The --comment value in iptables-save words, or None."""
    for i, word in enumerate(words[:-1]):
        if word == "--comment":
            return words[i + 1]
    return None


def without_comment(words):
    out, skip = [], 0
    for i, word in enumerate(words):
        if skip:
            skip -= 1
            continue
        if word == "-m" and i + 1 < len(words) and words[i + 1] == "comment":
            skip = 3 if i + 2 < len(words) and words[i + 2] == "--comment" else 1
            continue
        out.append(word)
    return out


# ---------------------------------------------------------------------------
# Reading the host
def parse_iptables_save(text):
    """iptables-save output -> {table: {"policies": {chain: policy}, "rules": [(chain, words)]}}."""
    tables, table = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:].strip(), {"policies": {}, "rules": []})
        elif line.startswith(":") and table is not None:
            parts = line[1:].split()
            table["policies"][parts[0]] = parts[1] if len(parts) > 1 else "-"
        elif line.startswith("-A ") and table is not None:
            words = shlex.split(line)
            table["rules"].append((words[1], words[2:]))
    return tables


def forward_drops(table):
    """Does this iptables filter table's FORWARD chain drop (policy or rule)?"""
    if table is None:
        return False
    if table["policies"].get("FORWARD") == "DROP":
        return True
    return any(chain == "FORWARD" and "-j" in words
               and words[words.index("-j") + 1] in ("DROP", "REJECT")
               for chain, words in table["rules"])


class Host:
    """Which firewall tools this host has, looked up once per module run."""

    def __init__(self):
        self._bins = {}
        self._default_variant = False

    def bin(self, name):
        if name not in self._bins:
            self._bins[name] = find_bin(name)
        return self._bins[name]

    def nft_works(self):
        nft = self.bin("nft")
        return bool(nft) and run([nft, "list", "tables"], check=False).returncode == 0

    def default_variant(self):
        """What `iptables` is on this host: 'nf_tables', 'legacy' or None."""
        if self._default_variant is False:
            self._default_variant = None
            ipt = self.bin("iptables")
            if ipt:
                out = run([ipt, "-V"], check=False).stdout
                self._default_variant = "nf_tables" if "nf_tables" in out else "legacy"
        return self._default_variant

    def variant_tool(self, variant, suffix=""):
        """Path of iptables-nft[-save|-restore] or iptables-legacy[...], or None."""
        path = self.bin(IPT_TOOL[variant] + suffix)
        if path is None and variant == self.default_variant():
            path = self.bin("iptables" + suffix)
        return path

    def variant_display(self, variant):
        return "iptables" if variant == self.default_variant() else IPT_TOOL[variant]

    def legacy_tables(self):
        try:
            with open("/proc/net/ip_tables_names") as fh:
                return fh.read().split()
        except OSError:
            return []

    def iptables_save(self, variant):
        """Parsed rules of one flavour ({} when it has no tables)."""
        if variant == "legacy" and not self.legacy_tables():
            return {}  # never load legacy tables just by looking
        save = self.variant_tool(variant, "-save")
        if save is None:
            return {}
        return parse_iptables_save(run([save]).stdout)


def select_backend(host, requested):
    """The backend to use; raises InvalidInput('backend') when it cannot work here."""
    if requested not in BACKENDS:
        raise InvalidInput("backend", "%r is not one of %s" % (requested, ", ".join(BACKENDS)))
    if requested in ("auto", "nftables") and host.bin("nft"):
        if requested == "nftables" or host.nft_works():
            return "nftables"
    if requested == "nftables":
        raise InvalidInput("backend", "nftables was requested but the nft command is not installed "
                           "(install the Debian/Ubuntu package nftables)")
    if host.bin("iptables") or host.bin("iptables-nft") or host.bin("iptables-legacy"):
        return "iptables"
    if requested == "iptables":
        raise InvalidInput("backend", "iptables was requested but the iptables command is not "
                           "installed (install the Debian/Ubuntu package iptables)")
    raise InvalidInput("backend", "neither nft nor iptables is installed (install the "
                       "Debian/Ubuntu package nftables, or iptables)")


def choose_variant(host, saves, warnings):
    """The iptables flavour to use: never mix legacy and nf_tables.

    Where our chains already live wins; else the only flavour holding rules;
    else what `iptables -V` says.
    """
    default = host.default_variant() or ("nf_tables" if host.bin("iptables-nft") else "legacy")

    def ours(v):
        return any(c.startswith("HANDBUILT-") for t in saves[v].values() for c in t["policies"])

    def has_rules(v):
        return any(t["rules"] for t in saves[v].values())

    usable = [v for v in IPT_VARIANTS if host.variant_tool(v) and host.variant_tool(v, "-restore")]
    owning = [v for v in usable if ours(v)]
    if len(owning) == 1:
        return owning[0]
    other = [v for v in usable if v != default]
    if other and has_rules(other[0]) and not has_rules(default) and not owning:
        warnings.append("iptables is %s but only the %s tables hold rules: using %s so the "
                        "rules are not split between the two" % (default, other[0], IPT_TOOL[other[0]]))
        return other[0]
    if default not in usable and usable:
        return usable[0]
    return default


def read_nft(host):
    """The ruleset as the nft backend needs it (one `nft -j list ruleset`)."""
    out = run([host.bin("nft"), "-j", "list", "ruleset"]).stdout
    items = json.loads(out).get("nftables", []) if out.strip() else []
    state = {"table": False, "chains": {}, "rules": [], "foreign_drops": [],
             "ipt_nft_forward": False, "ipt_nft_ours": False}
    for item in items:
        if "table" in item:
            t = item["table"]
            if (t["family"], t["name"]) == (NFT_FAMILY, NFT_TABLE):
                state["table"] = True
        elif "chain" in item:
            c = item["chain"]
            if (c["family"], c["table"]) == (NFT_FAMILY, NFT_TABLE):
                state["chains"][c["name"]] = 0
            elif (c["family"], c["table"]) == ("ip", "filter"):
                if c["name"] == "FORWARD" and c.get("policy") == "drop":
                    state["ipt_nft_forward"] = True
                if c["name"].startswith("HANDBUILT-"):
                    state["ipt_nft_ours"] = True
            elif c.get("hook") == "forward" and c.get("policy") == "drop" \
                    and c["family"] in ("ip", "inet"):
                state["foreign_drops"].append("%s %s %s" % (c["family"], c["table"], c["name"]))
        elif "rule" in item:
            r = item["rule"]
            if (r["family"], r["table"]) == (NFT_FAMILY, NFT_TABLE):
                state["chains"][r["chain"]] = state["chains"].get(r["chain"], 0) + 1
                state["rules"].append({"chain": r["chain"], "handle": r["handle"],
                                       "comment": r.get("comment")})
            elif (r["family"], r["table"], r["chain"]) == ("ip", "filter", "FORWARD"):
                expr = json.dumps(r.get("expr", []))
                if '"drop"' in expr or '"reject"' in expr:
                    state["ipt_nft_forward"] = True
    return state


def nft_rule_texts(host):
    """handle -> rule text of our table (for describing rules we did not render)."""
    proc = run([host.bin("nft"), "-a", "list", "table", NFT_FAMILY, NFT_TABLE], check=False)
    texts = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^\s+(.*?)\s+# handle (\d+)$", line)
        if m and not m.group(1).startswith(("chain ", "table ")):
            texts[int(m.group(2))] = re.sub(r'\s*comment "[^"]*"', "", m.group(1))
    return texts


# ---------------------------------------------------------------------------
# Plan steps that the run batches into transactions
class NftOp(Op):
    """One line of an nft script; consecutive ones run as one `nft -f -`."""

    __slots__ = ("line",)

    def __init__(self, line):
        super().__init__(display("nft", line), None)
        self.line = line


class IptOp(Op):
    """One iptables command; consecutive ones of a flavour run as one iptables-restore."""

    __slots__ = ("variant", "table", "words")

    def __init__(self, host, variant, table, words):
        super().__init__(render([host.variant_display(variant), "-t", table] + words), None)
        self.variant, self.table, self.words = variant, table, words


def restore_line(words):
    return " ".join('"%s"' % w if (" " in w or not w) else w for w in words)


def apply_batched(host, ops, check_mode, describe_error=str):
    """apply_plan, but consecutive NftOps/IptOps of one flavour go in one transaction."""
    commands = [op.command for op in ops]
    if check_mode:
        return commands
    groups, i = [], 0
    while i < len(ops):
        op, j = ops[i], i + 1
        if isinstance(op, (NftOp, IptOp)):
            key = (type(op), getattr(op, "variant", None))
            while j < len(ops) and (type(ops[j]), getattr(ops[j], "variant", None)) == key:
                j += 1
        groups.append((i, ops[i:j]))
        i = j
    for start, group in groups:
        try:
            first = group[0]
            if isinstance(first, NftOp):
                script = "".join(op.line + "\n" for op in group)
                run([host.bin("nft"), "-f", "-"], stdin=script)
            elif isinstance(first, IptOp):
                tables = []
                for op in group:
                    if op.table not in tables:
                        tables.append(op.table)
                text = ""
                for table in tables:
                    text += "*%s\n" % table
                    text += "".join(restore_line(op.words) + "\n" for op in group if op.table == table)
                    text += "COMMIT\n"
                run([host.variant_tool(first.variant, "-restore"), "--noflush"], stdin=text)
            else:
                first.apply()
        except PlanError:
            raise
        except Exception as exc:
            what = group[0].command if len(group) == 1 else (
                "the transaction of %d steps (%s ... %s)" % (len(group), group[0].command, group[-1].command))
            raise PlanError("%s failed: %s (steps already applied: %s)"
                            % (what, describe_error(exc), commands[:start] or "none"))
    return commands


# ---------------------------------------------------------------------------
# sysctls, with the value found before the collection changed it
def sysctl_path(key):
    """/proc/sys path of a sysctl; interface names (net.ipv4.conf.<dev>.x) may hold dots."""
    for prefix in ("net.ipv4.conf.", "net.ipv6.conf."):
        if key.startswith(prefix):
            dev, leaf = key[len(prefix):].rsplit(".", 1)
            return "/proc/sys/%s%s/%s" % (prefix.replace(".", "/"), dev, leaf)
    return "/proc/sys/" + key.replace(".", "/")


def read_sysctl(key):
    try:
        with open(sysctl_path(key)) as fh:
            return fh.read().strip()
    except OSError:
        return None


def write_sysctl(key, value):
    with open(sysctl_path(key), "w") as fh:
        fh.write("%s\n" % value)


def write_file(path, text):
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def remove_pruning(path, stop):
    """Remove a state file and the directories above it that became empty."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    parent = os.path.dirname(path)
    while parent.startswith(stop.rstrip("/") + "/"):
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)


class Sysctls:
    """Claims on sysctls under <state_dir>/sysctl/<key>/.

    ``original`` holds the value found before the collection changed it (only
    written when it did); one empty file per holder (``masquerade@web``) says
    who still needs the value. The last holder to go restores ``original``.
    """

    def __init__(self, state_dir, holder):
        self.root = os.path.join(state_dir, "sysctl")
        self.state_dir = state_dir
        self.holder = holder

    def holds(self, key):
        """Whether this holder has a claim on ``key`` (read without touching the sysctl)."""
        return os.path.exists(os.path.join(self.root, key, self.holder))

    def read(self):
        """{key: {"value": ..., "original": ..., "holders": [...]}} for every claimed key."""
        state = {}
        if os.path.isdir(self.root):
            for key in sorted(os.listdir(self.root)):
                state[key] = self._read_key(key)
        return state

    def _read_key(self, key):
        d = os.path.join(self.root, key)
        holders = sorted(f for f in os.listdir(d) if f != "original") if os.path.isdir(d) else []
        try:
            with open(os.path.join(d, "original")) as fh:
                original = fh.read().strip()
        except OSError:
            original = None
        return {"value": read_sysctl(key), "original": original, "holders": holders}

    def plan_claim(self, state, key, want):
        entry = state.get(key) or {"value": read_sysctl(key), "original": None, "holders": []}
        d = os.path.join(self.root, key)
        ops = []
        if self.holder not in entry["holders"]:
            marker = os.path.join(d, self.holder)
            ops.append(Op(render(["touch", marker]), write_file, marker, ""))
        if entry["value"] is None:
            raise PlanError("%s does not exist on this host (%s)" % (key, sysctl_path(key)))
        if entry["value"] != want:
            if entry["original"] is None:
                path = os.path.join(d, "original")
                ops.append(Op("echo %s > %s" % (entry["value"], shell_quote(path)),
                              write_file, path, entry["value"] + "\n"))
            ops.append(Op(render(["sysctl", "-w", "%s=%s" % (key, want)]), write_sysctl, key, want))
        return ops

    def plan_release(self, state, key):
        entry = state.get(key)
        if not entry or self.holder not in entry["holders"]:
            return []
        d = os.path.join(self.root, key)
        marker = os.path.join(d, self.holder)
        ops = [Op(render(["rm", "-f", marker]), remove_pruning, marker, self.state_dir)]
        if len([h for h in entry["holders"] if h != self.holder]) == 0 and entry["original"] is not None:
            if entry["value"] is not None and entry["value"] != entry["original"]:
                ops.append(Op(render(["sysctl", "-w", "%s=%s" % (key, entry["original"])]),
                              write_sysctl, key, entry["original"]))
            path = os.path.join(d, "original")
            ops.append(Op(render(["rm", "-f", path]), remove_pruning, path, self.state_dir))
        return ops


# ---------------------------------------------------------------------------
def route_info(host, address, cache):
    """(device, connected subnet or None) the host routes ``address`` through."""
    if address in cache:
        return cache[address]
    ip = find_bin("ip")
    info = (None, None)
    if ip:
        proc = run([ip, "-j", "-4", "route", "show", "table", "main"], check=False)
        try:
            routes = json.loads(proc.stdout or "[]")
        except ValueError:
            routes = []
        best = None
        target = ipaddress.ip_address(address)
        for r in routes:
            dst = r.get("dst")
            if not dst or r.get("type", "unicast") != "unicast" or "dev" not in r:
                continue
            net = ipaddress.ip_network("0.0.0.0/0" if dst == "default" else (
                dst if "/" in dst else dst + "/32"), strict=False)
            if target in net and (best is None or net.prefixlen > best[0].prefixlen):
                best = (net, r)
        if best is not None:
            net, r = best
            link = r.get("scope") == "link" and "gateway" not in r
            info = (r["dev"], str(net) if link and net.prefixlen > 0 else None)
    cache[address] = info
    return info


class Firewall(Resource):
    """Rules tagged with this resource's identity, on one backend, plus sysctl claims."""

    kind = None

    def __init__(self, name, state="present", backend="auto", ip_forward=True,
                 state_dir="/run/handbuilt", check_mode=False, host=None):
        super().__init__()
        if state not in ("present", "absent"):
            raise InvalidInput("state", "%r must be present or absent" % (state,))
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput("name", "%r must be 1-48 letters, digits, '.', '_' or '-' "
                               "(it becomes part of every rule's comment)" % (name,))
        self.name = name
        self.state = state
        self.ip_forward = bool(ip_forward)
        self.check_mode = check_mode
        self.host = host or Host()
        self.backend = select_backend(self.host, backend)
        self.prefix = "%s/%s/%s/" % (OWNER, self.kind, name)
        self.sysctls = Sysctls(state_dir, self.sysctl_holder(name))
        self._routes = {}
        self.removed_first = []  # see expect_removed_first()

    @classmethod
    def sysctl_holder(cls, name):
        return "%s@%s" % (cls.kind, name)

    @classmethod
    def holds_ip_forward(cls, name, state_dir):
        """Whether the resource ``name`` of this kind exists (or did, half-removed), from its
        ip_forward claim alone: no firewall tool runs, nothing is built."""
        return Sysctls(state_dir, cls.sysctl_holder(name)).holds("net.ipv4.ip_forward")

    # --- what the declaration wants --------------------------------------------
    def desired_rules(self):
        raise NotImplementedError

    def desired_sysctls(self):
        return {"net.ipv4.ip_forward": "1"} if self.ip_forward else {}

    def comment(self, rule):
        return self.prefix + rule.digest

    def expect_removed_first(self, earlier):
        """Check mode of a run that removes ``earlier`` (another firewall resource) just
        before this one (compose's teardown: the ports, then the NAT): predict from what
        it leaves - its rules gone, the chains it empties deleted, its sysctl claims
        released. A real run reads the host after it."""
        if self.check_mode:
            self.removed_first.append(earlier)

    def _without(self, state, earlier):
        nft = state["nft"]
        if nft is not None:
            emptied = set()
            for rule in [r for r in nft["rules"] if (r["comment"] or "").startswith(earlier.prefix)]:
                nft["rules"].remove(rule)
                nft["chains"][rule["chain"]] -= 1
                if not nft["chains"][rule["chain"]]:
                    emptied.add(rule["chain"])
            for chain in emptied:
                del nft["chains"][chain]
            if emptied and not nft["chains"]:
                nft["table"] = False
        for tables in state["ipt"].values():
            for table in tables.values():
                ours = [(c, w) for c, w in table["rules"] if c.startswith("HANDBUILT-")
                        and (comment_of(w) or "").startswith(earlier.prefix)]
                left = [rule for rule in table["rules"] if rule not in ours]
                for chain in {c for c, dummy in ours} - {c for c, dummy in left}:
                    table["policies"].pop(chain, None)  # emptied: -X, and its jump goes
                    left = [(c, w) for c, w in left if w[-2:] != ["-j", chain]]
                table["rules"] = left
        for entry in state["sysctl"].values():
            if earlier.sysctls.holder in entry["holders"]:
                entry["holders"] = [h for h in entry["holders"] if h != earlier.sysctls.holder]
                if not entry["holders"] and entry["original"] is not None:
                    entry["value"], entry["original"] = entry["original"], None

    # --- reading ---------------------------------------------------------------
    def read(self):
        rules = self.desired_rules() if self.state == "present" else []
        state = {"desired": rules, "nft": None, "ipt": {}, "variant": None,
                 "sysctl": self.sysctls.read()}
        saves = {}
        if self.backend == "nftables":
            state["nft"] = read_nft(self.host)
            wanted = []
            if state["nft"]["ipt_nft_forward"] or state["nft"]["ipt_nft_ours"]:
                wanted.append("nf_tables")
            if "filter" in self.host.legacy_tables():
                wanted.append("legacy")
            for v in wanted:
                if self.host.variant_tool(v, "-save") and self.host.variant_tool(v, "-restore"):
                    saves[v] = self.host.iptables_save(v)
            fwd = [v for v in saves
                   if forward_drops(saves[v].get("filter"))
                   or "HANDBUILT-FORWARD" in saves[v].get("filter", {}).get("policies", {})]
            state["forward_variants"] = fwd
            if state["nft"]["ipt_nft_forward"] and "nf_tables" not in saves and any(
                    r.chain == "forward" for r in rules):
                self.warnings.append("iptables filter FORWARD drops, but iptables-nft is not "
                                     "installed to add the accept rules (package iptables)")
            if any(r.chain == "forward" for r in rules):
                for chain in state["nft"]["foreign_drops"]:
                    self.warnings.append(
                        "nftables chain %s has policy drop on the forward hook: forwarded "
                        "traffic of %s is dropped there unless that chain accepts it (this "
                        "module only edits its own table)" % (chain, self.subject()))
        else:
            for v in IPT_VARIANTS:
                if self.host.variant_tool(v, "-save"):
                    saves[v] = self.host.iptables_save(v)
            variant = choose_variant(self.host, saves, self.warnings)
            if self.host.variant_tool(variant, "-restore") is None:
                raise PlanError("backend: %s-restore is missing (install the package iptables)"
                                % IPT_TOOL[variant])
            state["variant"] = variant
            saves = {variant: saves.get(variant, {})}
            state["forward_variants"] = [variant]
        state["ipt"] = saves
        for earlier in self.removed_first:
            self._without(state, earlier)
        state["installed"] = self._installed(state)
        return state

    def subject(self):
        return "%s %s" % (self.kind, self.name)

    def _installed(self, state):
        """Our rules as installed: [(place, chain, comment, handle/words)]."""
        found = []
        if state["nft"] is not None:
            for r in state["nft"]["rules"]:
                if (r["comment"] or "").startswith(self.prefix):
                    found.append((("nft",), r["chain"], r["comment"], r["handle"]))
        for v, tables in state["ipt"].items():
            for table_name, table in tables.items():
                for chain, words in table["rules"]:
                    comment = comment_of(words) or ""
                    if chain.startswith("HANDBUILT-") and comment.startswith(self.prefix):
                        found.append((("ipt", v, table_name), chain, comment, words))
        return found

    # --- planning --------------------------------------------------------------
    def places(self, state, rule):
        """Where a desired rule goes: [("nft",)] or [("ipt", variant, table)]."""
        dummy, table, dummy, dummy = CHAINS[rule.chain]
        if state["nft"] is not None:
            if rule.chain == "forward":
                return [("ipt", v, table) for v in state["forward_variants"]]
            return [("nft",)]
        return [("ipt", state["variant"], table)]

    def chain_name(self, place, chain):
        return chain if place[0] == "nft" else "HANDBUILT-" + CHAINS[chain][2]

    def wanted(self, state):
        """{(place, chain name): [(comment, Rule)]} for every desired rule."""
        want = {}
        for rule in state["desired"]:
            for place in self.places(state, rule):
                entries = want.setdefault((place, self.chain_name(place, rule.chain)), [])
                if all(c != self.comment(rule) for c, dummy in entries):
                    entries.append((self.comment(rule), rule))
        return want

    def plan(self, current):
        ops = self.plan_rules(current)
        claims = self.desired_sysctls() if self.state == "present" else {}
        if self.state == "present":
            for key, value in claims.items():
                ops += self.sysctls.plan_claim(current["sysctl"], key, value)
        for key, entry in current["sysctl"].items():
            if key not in claims:
                ops += self.sysctls.plan_release(current["sysctl"], key)
        return ops

    def plan_rules(self, state):
        want = self.wanted(state)
        have = {}
        for place, chain, comment, ref in state["installed"]:
            have.setdefault((place, chain), []).append((comment, ref))
        keys = sorted(set(want) | set(have), key=lambda k: (k[0], CHAIN_ORDER.index(
            self._abstract(k[1]))))
        nft_ops, nft_tail, ipt_ops = [], [], {}
        nft = state["nft"]
        nft_chains = dict(nft["chains"]) if nft else {}
        for key in keys:
            place, chain = key
            desired = want.get(key, [])
            installed = have.get(key, [])
            wanted_comments = {c for c, dummy in desired}
            seen, delete = set(), []
            for comment, ref in installed:
                if comment not in wanted_comments or comment in seen:
                    delete.append(ref)
                seen.add(comment)
            add = [(c, r) for c, r in desired if c not in seen]
            if place[0] == "nft":
                total = nft_chains.get(chain, 0)
                remaining = total - len(delete) + len(add)
                for handle in delete:
                    nft_ops.append(NftOp("delete rule %s %s %s handle %d"
                                         % (NFT_FAMILY, NFT_TABLE, chain, handle)))
                if add and chain not in nft_chains:
                    nft_ops.append(NftOp("add chain %s %s %s { %s }"
                                         % (NFT_FAMILY, NFT_TABLE, chain, CHAINS[chain][0])))
                for comment, rule in add:
                    nft_ops.append(NftOp('add rule %s %s %s %s comment "%s"'
                                         % (NFT_FAMILY, NFT_TABLE, chain, rule.nft(), comment)))
                if remaining == 0 and chain in nft_chains:
                    nft_tail.append(NftOp("delete chain %s %s %s" % (NFT_FAMILY, NFT_TABLE, chain)))
                    del nft_chains[chain]
                else:
                    nft_chains[chain] = remaining
            else:
                ipt_ops.setdefault(place[1], []).extend(
                    self._plan_ipt(state, place, chain, delete, add))
        ops = []
        if nft is not None and (nft_ops or nft_tail):
            if not nft["table"] and any(op.line.startswith("add ") for op in nft_ops):
                ops.append(NftOp("add table %s %s" % (NFT_FAMILY, NFT_TABLE)))
            ops += nft_ops + nft_tail
            if nft["table"] and not nft_chains:
                ops.append(NftOp("delete table %s %s" % (NFT_FAMILY, NFT_TABLE)))
        for variant in IPT_VARIANTS:
            ops += ipt_ops.get(variant, [])
        return ops

    @staticmethod
    def _abstract(chain):
        for name, spec in CHAINS.items():
            if chain in (name, "HANDBUILT-" + spec[2]):
                return name
        return "forward"

    def _plan_ipt(self, state, place, chain, delete, add):
        dummy, variant, table_name = place
        table = state["ipt"].get(variant, {}).get(table_name, {"policies": {}, "rules": []})
        builtin = CHAINS[self._abstract(chain)][2]
        first = CHAINS[self._abstract(chain)][3]
        exists = chain in table["policies"]
        total = sum(1 for c, dummy in table["rules"] if c == chain)
        remaining = total - len(delete) + len(add)
        jump = ["-m", "comment", "--comment", OWNER, "-j", chain]
        jumps = [w for c, w in table["rules"] if c == builtin and w[-2:] == ["-j", chain]]

        def op(words):
            return IptOp(self.host, variant, table_name, words)

        ops = [op(["-D", chain] + words) for words in delete]
        if remaining > 0:
            if not exists:
                ops.append(op(["-N", chain]))
            for comment, rule in add:
                ops.append(op(["-A", chain] + rule.iptables(comment)))
            if not jumps:
                ops.append(op((["-I", builtin, "1"] if first else ["-A", builtin]) + jump))
        elif exists:
            ops += [op(["-D", builtin] + w) for w in jumps]
            ops.append(op(["-X", chain]))
        return ops

    # --- describing ------------------------------------------------------------
    def rule_views(self, state):
        """Our rules as installed, one string each, sorted."""
        known = {}
        for rule in state["desired"]:
            known[self.comment(rule)] = rule
        texts = None
        out = []
        for place, chain, comment, ref in state["installed"]:
            rule = known.get(comment)
            if place[0] == "nft":
                if rule is not None:
                    text = rule.nft()
                else:
                    if texts is None:
                        texts = nft_rule_texts(self.host)
                    text = texts.get(ref, comment)
            else:
                text = " ".join(rule.iptables() if rule is not None else without_comment(ref))
            out.append(self._rule_line(place, chain, text))
        return sorted(out)

    def predicted_rules(self, state):
        out = []
        for (place, chain), entries in self.wanted(state).items():
            for dummy, rule in entries:
                text = rule.nft() if place[0] == "nft" else " ".join(rule.iptables())
                out.append(self._rule_line(place, chain, text))
        return sorted(out)

    def _rule_line(self, place, chain, text):
        """One rule as rule_views and predicted_rules show it: where it lives, then the rule."""
        if place[0] == "nft":
            return "nft %s %s %s: %s" % (NFT_FAMILY, NFT_TABLE, chain, text)
        return "%s -t %s %s: %s" % (self.host.variant_display(place[1]), place[2], chain, text)

    def backend_label(self, state):
        if state["variant"]:
            return "iptables"
        return self.backend

    def view(self, current):
        rules = self.rule_views(current)
        held = {k: v["value"] for k, v in current["sysctl"].items()
                if self.sysctls.holder in v["holders"]}
        if not rules and not held:
            return {"state": "absent"}
        return {"state": "present", "backend": self.backend_label(current), "rules": rules,
                "sysctl": held}

    def predict(self, before):
        if self.state == "absent":
            return {"state": "absent"}
        return {"state": "present", "backend": self.backend, "rules": self._predicted,
                "sysctl": dict(self.desired_sysctls())}

    def converge(self, check_mode):
        current = self.read()
        self._predicted = self.predicted_rules(current)
        ops = self.plan(current)
        before = self.view(current)
        commands = apply_batched(self.host, ops, check_mode, self.describe_error)
        if ops and not check_mode:
            current = self.read()
            after = self.view(current)
        else:
            after = self.predict(before) if ops else before
        result = dict(changed=bool(ops), commands=commands, diff=dict(before=before, after=after))
        result.update(self.facts(current))
        return result

    def facts(self, current):
        return {"backend": self.backend_label(current),
                "iptables_variant": current["variant"],
                "rules": self.rule_views(current),
                "sysctl": {k: v["value"] for k, v in current["sysctl"].items()
                           if self.sysctls.holder in v["holders"]}}

    def describe_error(self, exc):
        if isinstance(exc, CommandError):
            return (exc.stderr or str(exc)).strip()
        if isinstance(exc, OSError) and exc.errno:
            return "%s (%s)" % (exc.strerror, exc.filename or "")
        return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------
def ipv4_network(param, value):
    net = validate.network(param, value)
    if net.version != 4:
        raise InvalidInput(param, "%s is IPv6; only IPv4 is supported for now" % net)
    return net


def ipv4_address(param, value):
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InvalidInput(param, "%r is not an IP address" % (value,))
    if addr.version != 4:
        raise InvalidInput(param, "%s is IPv6; only IPv4 is supported for now" % addr)
    return addr


port = validate.port


def destination(param, value):
    """'10.10.0.2:80' -> (IPv4Address, 80)."""
    if not isinstance(value, str) or value.count(":") != 1:
        raise InvalidInput(param, "%r is not an address:port such as 10.10.0.2:80" % (value,))
    addr, dummy, p = value.strip().partition(":")
    if not p.strip().isdigit():
        raise InvalidInput(param, "%r is not an address:port such as 10.10.0.2:80 (bad port)"
                           % (value,))
    address = ipv4_address(param, addr)
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        raise InvalidInput(param, "%s cannot be a forwarding destination" % address)
    return address, port(param, int(p))


class Masquerade(Firewall):
    """Source NAT of a subnet to the outside, with forwarding allowed for it."""

    kind = "masquerade"

    def __init__(self, source, name=None, exclude_interface=None, forward_accept=True, **kw):
        self.source = ipv4_network("source", source)
        if name is None:
            name = str(self.source).replace("/", "-")
        self.exclude = validate.ifname("exclude_interface", exclude_interface) \
            if exclude_interface else None
        self.forward_accept = forward_accept
        super().__init__(name, **kw)

    def desired_rules(self):
        src = str(self.source)
        rules = [Rule("postrouting", "masquerade", saddr=src, oif_not=self.exclude)]
        if self.forward_accept:
            rules += [Rule("forward", "accept", saddr=src),
                      Rule("forward", "accept", daddr=src, ct="established")]
        return rules

    def facts(self, current):
        return dict(super().facts(current), source=str(self.source), name=self.name)


class PortForward(Firewall):
    """Published ports: host (address:)port -> container address:port."""

    kind = "port_forward"

    def __init__(self, name, ports, localhost=True, listed=True, **kw):
        self._sysctls = None
        self.ports = []
        seen = set()
        for i, spec in enumerate(ports or []):
            where = "ports[%d]." % i if listed else ""
            proto = spec.get("protocol") or "tcp"
            if proto not in ("tcp", "udp"):
                raise InvalidInput(where + "protocol", "%r must be tcp or udp" % (proto,))
            if spec.get("host_port") is None:
                raise InvalidInput(where + "host_port", "is required")
            hport = port(where + "host_port", spec.get("host_port"))
            haddr = spec.get("host_address")
            haddr = str(ipv4_address(where + "host_address", haddr)) if haddr else None
            if spec.get("destination") is None:
                raise InvalidInput(where + "destination", "is required")
            daddr, dport = destination(where + "destination", spec.get("destination"))
            key = (proto, haddr, hport)
            if key in seen:
                raise InvalidInput(where + "host_port", "%s/%s%d is listed twice"
                                   % (proto, haddr + ":" if haddr else "", hport))
            seen.add(key)
            self.ports.append({"protocol": proto, "host_address": haddr, "host_port": hport,
                               "destination": "%s:%d" % (daddr, dport),
                               "dest_addr": str(daddr), "dest_port": dport})
        self.localhost = localhost
        super().__init__(name, **kw)
        if self.state == "present" and not self.ports:
            raise InvalidInput("ports", "state=present needs host_port and destination, or ports")

    def _route(self, addr):
        dev, subnet = route_info(self.host, addr, self._routes)
        return dev, subnet

    def desired_rules(self):
        rules = []
        for p in self.ports:
            proto, daddr, dport = p["protocol"], p["dest_addr"], p["dest_port"]
            match = dict(daddr=p["host_address"]) if p["host_address"] else dict(local_dst=True)
            rules.append(Rule("prerouting", "dnat", proto=proto, dport=p["host_port"],
                              to=p["destination"], **match))
            dev, subnet = self._route(daddr)
            if subnet:  # hairpin: a container reaching a published port on its own bridge
                rules.append(Rule("postrouting", "masquerade", saddr=subnet, daddr=daddr,
                                  proto=proto, dport=dport, ct="dnat"))
            if self.localhost:
                rules.append(Rule("output", "dnat", proto=proto, dport=p["host_port"],
                                  to=p["destination"], **match))
                rules.append(Rule("postrouting", "masquerade", saddr=LOOPBACK, daddr=daddr,
                                  proto=proto, dport=dport, ct="dnat"))
                if dev:
                    # route_localnet lets 127.0.0.1 leave through dev; refuse anything
                    # arriving there for 127/8 that is not a reply (CVE-2020-8558).
                    rules.append(Rule("input", "drop", iif=dev, daddr=LOOPBACK,
                                      ct="new-not-dnat"))
            rules += [Rule("forward", "accept", daddr=daddr, proto=proto, dport=dport),
                      Rule("forward", "accept", saddr=daddr, proto=proto, sport=dport)]
        return rules

    def desired_sysctls(self):
        if getattr(self, "_sysctls", None) is not None:
            return self._sysctls
        wanted = dict(super().desired_sysctls())
        self._sysctls = wanted
        if self.localhost:
            for p in self.ports:
                dev, dummy = self._route(p["dest_addr"])
                if dev is None:
                    message = ("destination: no route to %s on this host, so localhost access "
                               "cannot be set up (create the bridge first, or set localhost: false)"
                               % p["dest_addr"])
                    if not self.check_mode:
                        raise PlanError(message)
                    self.warnings.append(message + " (check mode: assuming an earlier task creates it)")
                    continue
                wanted["net.ipv4.conf.%s.route_localnet" % dev] = "1"
        return wanted

    def facts(self, current):
        return dict(super().facts(current), name=self.name,
                    ports=[{k: p[k] for k in ("protocol", "host_address", "host_port", "destination")}
                           for p in self.ports])


def run_firewall_module(module, factory):
    """Module glue: build the resource from params and converge it under the host lock."""
    from ansible_collections.handbuilt.containers.plugins.module_utils.resource import run_module

    run_module(module, lambda params: factory(params, Host()))
