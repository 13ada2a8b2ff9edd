# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Models of the network primitives: namespaces, bridges and veth pairs.

Each model reads the kernel through ``netlink.Netlink``, compares it with the
declaration and plans the ``ip`` steps that converge it. Links the collection
owns carry the ifalias ``handbuilt.containers``; namespaces it owns have a
marker file holding the namespace's inode under ``<state_dir>/netns/``.
"""

from __future__ import annotations

import os

from ansible_collections.handbuilt.containers.plugins.module_utils import validate
from ansible_collections.handbuilt.containers.plugins.module_utils.netlink import (
    OWNER_MARK,
    default_routes,
    describe_error,
    describe_link,
    find_link,
    link_name,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import (
    Op,
    PlanError,
    render,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    Resource,
    remove_file,
)

ABSENT = {"state": "absent"}
IFA_F_NODAD = 0x02


def ip_cmd(netns, *words):
    """The hand command for an `ip` step, run inside ``netns`` when given."""
    prefix = ["ip", "netns", "exec", netns, "ip"] if netns else ["ip"]
    return render(prefix + list(words))


def not_ours(what, name, param="force"):
    return PlanError(
        "%s %s exists but was not created by handbuilt.containers (it has no "
        "ownership mark); refusing to delete it. Set %s: true to delete it anyway."
        % (what, name, param))


class NetResource(Resource):
    def __init__(self, netlink, state, force=False, check_mode=False):
        super().__init__()
        self.nl = netlink
        self.state = state
        self.force = force
        self.check_mode = check_mode

    def describe_error(self, exc):
        return describe_error(exc)

    def writing(self):
        self.nl.stop_caching()

    def check_kind(self, current, kind):
        """The link named by the task must be of the module's kind."""
        if current is not None and current["kind"] != kind:
            raise PlanError("name: %s exists and is a %s, not a %s"
                            % (self.name, current["kind"] or "plain device", kind))

    def delete_steps(self, ipr, current, what):
        """state=absent for a link: nothing if gone, refused if not ours (unless force)."""
        if current is None:
            return []
        if current["alias"] != OWNER_MARK and not self.force:
            raise not_ours(what, self.name)
        return [Op(ip_cmd(None, "link", "del", self.name), ipr.link, "del", index=current["index"]())]

    def missing(self, param, what):
        """A dependency that does not exist: fatal, except in check mode where
        an earlier task of the same play would have created it."""
        message = "%s: %s does not exist" % (param, what)
        if not self.check_mode:
            raise PlanError(message)
        self.warnings.append(message + " (check mode: assuming an earlier task creates it)")

    def depends(self, ipr, param, name, kind=None):
        """The link a declaration refers to (a bridge, an underlay device), ready for planning."""
        link = find_link(ipr, name)
        if link is None:
            self.missing(param, name)
            return {"name": name, "kind": kind, "index": LazyIndex(ipr, name)}
        view = link_view(ipr, link, addresses=False)
        if kind and view["kind"] != kind:
            raise PlanError("%s: %s is a %s, not a %s" % (param, name, view["kind"] or "plain device", kind))
        return view

    def adopt(self, what, name):
        self.adopted = True
        self.warnings.append(
            "%s %s existed without the handbuilt.containers mark; it was converged and "
            "adopted (marked as owned by the collection)." % (what, name))

    # Plan steps shared by bridges and veth ends -----------------------------
    def link_steps(self, ipr, netns, link, mtu=None, master=None, hairpin=None):
        """Ops that converge one existing (or just planned) link: mark, mtu, master, up."""
        name = link["name"]

        def set_link(**kwargs):
            return Op(ip_cmd(netns, "link", "set", name, *words(kwargs)),
                      lambda: ipr.link("set", index=link["index"](), **resolve(kwargs)))

        ops = []
        if link["alias"] != OWNER_MARK:
            ops.append(set_link(ifalias=OWNER_MARK))
        if mtu is not None and link["mtu"] != mtu:
            ops.append(set_link(mtu=mtu))
        enslave = master is not None and (link["master_index"] is None
                                          or link["master_index"] != master["index"].known)
        if enslave:
            ops.append(set_link(master=master["index"]))
        if hairpin is not None and master is not None:
            # A port that is only now enslaved starts with hairpin off.
            if (False if enslave else bool(link.get("hairpin"))) != hairpin:
                ops.append(Op(ip_cmd(netns, "link", "set", name, "type", "bridge_slave", "hairpin",
                                     "on" if hairpin else "off"),
                              lambda: ipr.brport("set", index=link["index"](), mode=int(hairpin))))
        if not link["up"]:
            ops.append(set_link(state="up"))
        return ops

    def address_steps(self, ipr, netns, link, addresses):
        """Ops that make the link's addresses exactly ``addresses``."""
        if addresses is None:
            return []
        want = [str(a) for a in addresses]
        have = link["addresses"]
        name = link["name"]
        ops = []
        for cidr in have:
            if cidr not in want:
                addr, plen = cidr.split("/")
                ops.append(Op(ip_cmd(netns, "addr", "del", cidr, "dev", name),
                              lambda a=addr, p=int(plen): ipr.addr(
                                  "del", index=link["index"](), address=a, prefixlen=p)))
        for iface in addresses:
            if str(iface) not in have:
                kwargs = dict(address=str(iface.ip), prefixlen=iface.network.prefixlen)
                words = ["addr", "add", str(iface), "dev", name]
                if iface.version == 6:
                    kwargs["flags"] = IFA_F_NODAD  # no 1-3 s duplicate detection wait
                    words.append("nodad")
                elif iface.network.prefixlen < 31:
                    kwargs["broadcast"] = str(iface.network.broadcast_address)
                    words[3:3] = ["broadcast", "+"]
                ops.append(Op(ip_cmd(netns, *words),
                              lambda kw=kwargs: ipr.addr("add", index=link["index"](), **kw)))
        return ops


def words(kwargs):
    """`ip link set` words for the pyroute2 keyword arguments used here."""
    out = []
    for key, value in kwargs.items():
        if key == "ifalias":
            out += ["alias", value]
        elif key == "state":
            out.append(value)
        elif key == "master":
            out += ["master", value.name]
        else:
            out += [key, str(value)]
    return out


def resolve(kwargs):
    return {k: (v() if isinstance(v, LazyIndex) else v) for k, v in kwargs.items()}


class LazyIndex:
    """An interface index that may only exist once an earlier Op has run."""

    def __init__(self, ipr, name, index=None):
        self.ipr, self.name, self.index = ipr, name, index

    @property
    def known(self):
        return self.index

    def __call__(self):
        if self.index is None:
            link = find_link(self.ipr, self.name)
            if link is None:
                raise PlanError("interface %s did not appear" % self.name)
            self.index = link["index"]
        return self.index


def link_view(ipr, link, addresses=True):
    """describe_link with a lazily resolved index, ready for planning."""
    state = describe_link(ipr, link, addresses)
    state["index"] = LazyIndex(ipr, state["name"], state["index"])
    return state


def planned_link(ipr, name, kind, mtu=None):
    """The state a link will have right after `ip link add` creates it."""
    return {"hairpin": None, "name": name, "index": LazyIndex(ipr, name), "kind": kind, "alias": None,
            "mtu": mtu, "up": False, "operstate": "DOWN", "master_index": None,
            "peer_index": None, "addresses": []}


# ---------------------------------------------------------------------------
class Netns(NetResource):
    """A named network namespace, as `ip netns add` makes it."""

    def __init__(self, netlink, name, state="present", loopback=True, force=False,
                 state_dir="/run/handbuilt", links_first=True):
        super().__init__(netlink, state, force)
        self.name = validate.nsname("name", name)
        self.loopback = loopback
        self.links_first = links_first  # see Netlink.delete_ns
        self.state_dir = state_dir
        self.marker = os.path.join(state_dir, "netns", name)

    def owned(self):
        try:
            with open(self.marker) as fh:
                return fh.read().strip() == str(self.nl.ns_inode(self.name))
        except OSError:
            return False

    def read(self):
        if not self.nl.ns_exists(self.name):
            return None
        ipr = self.nl.ipr(self.name)
        lo = find_link(ipr, "lo")
        return {"owned": self.owned(), "loopback_up": bool(lo and lo["flags"] & 1),
                "inode": self.nl.ns_inode(self.name)}

    def plan(self, current):
        name = self.name
        if self.state == "absent":
            ops = []
            if current is not None:
                if not current["owned"] and not self.force:
                    raise not_ours("network namespace", name)
                ops.append(Op(render(["ip", "netns", "del", name]), self.nl.delete_ns, name,
                              self.links_first))
            if os.path.exists(self.marker):
                ops.append(Op(render(["rm", "-f", self.marker]), remove_file, self.marker, self.state_dir))
            return ops
        ops = []
        if current is None:
            ops.append(Op(render(["ip", "netns", "add", name]), self.nl.create_ns, name))
            current = {"owned": False, "loopback_up": False, "new": True}
        if not current["owned"]:
            if not current.get("new"):
                self.adopt("network namespace", name)
            ops.append(Op("echo $(stat -c %%i %s) > %s" % (self.nl.ns_path(name), self.marker),
                          self._mark))
        if self.loopback and not current["loopback_up"]:
            ops.append(Op(ip_cmd(name, "link", "set", "lo", "up"), self._lo_up))
        return ops

    def _mark(self):
        os.makedirs(os.path.dirname(self.marker), 0o755, exist_ok=True)
        with open(self.marker, "w") as fh:
            fh.write("%s\n" % self.nl.ns_inode(self.name))

    def _lo_up(self):
        ipr = self.nl.ipr(self.name)
        ipr.link("set", index=find_link(ipr, "lo")["index"], state="up")

    def view(self, current):
        if current is None:
            return dict(ABSENT)
        return {"state": "present", "name": self.name, "owned": current["owned"],
                "loopback_up": current["loopback_up"]}

    def predict(self, before):
        if self.state == "absent":
            return dict(ABSENT)
        after = dict(before, state="present", name=self.name, owned=True)
        after["loopback_up"] = True if self.loopback else before.get("loopback_up", False)
        return after

    def facts(self, current):
        return {"name": self.name, "path": self.nl.ns_path(self.name),
                "inode": current["inode"] if current else None}


# ---------------------------------------------------------------------------
class Bridge(NetResource):
    """A Linux bridge with its addresses, MTU and link up."""

    def __init__(self, netlink, name, state="present", addresses=None, mtu=None, force=False):
        super().__init__(netlink, state, force)
        self.name = validate.ifname("name", name)
        self.addresses = validate.cidrs("addresses", addresses)
        self.mtu = validate.mtu("mtu", mtu)
        self.ipr = netlink.ipr()

    def read(self):
        link = find_link(self.ipr, self.name)
        if link is None:
            return None
        state = link_view(self.ipr, link)
        if state["kind"] != "bridge":
            return state
        state["ports"] = sorted(
            port.get_attr("IFLA_IFNAME") for port in self.ipr.get_links()
            if port.get_attr("IFLA_MASTER") == link["index"])
        return state

    def plan(self, current):
        name = self.name
        self.check_kind(current, "bridge")
        if self.state == "absent":
            return self.delete_steps(self.ipr, current, "bridge")
        ops = []
        if current is None:
            ops.append(Op(ip_cmd(None, "link", "add", name, "type", "bridge"),
                          self.ipr.link, "add", ifname=name, kind="bridge"))
            current = planned_link(self.ipr, name, "bridge")
        elif current["alias"] != OWNER_MARK:
            self.adopt("bridge", name)
        ops += self.link_steps(self.ipr, None, current, mtu=self.mtu)
        ops += self.address_steps(self.ipr, None, current, self.addresses)
        return ops

    def view(self, current):
        if current is None:
            return dict(ABSENT)
        return {"state": "present", "name": self.name, "kind": current["kind"],
                "owned": current["alias"] == OWNER_MARK, "mtu": current["mtu"],
                "up": current["up"], "addresses": sorted(current["addresses"])}

    def predict(self, before):
        if self.state == "absent":
            return dict(ABSENT)
        after = dict(before, state="present", name=self.name, kind="bridge", owned=True, up=True)
        if self.mtu is not None:
            after["mtu"] = self.mtu
        if self.addresses is not None:
            after["addresses"] = sorted(str(a) for a in self.addresses)
        after.setdefault("addresses", [])
        return after

    def facts(self, current):
        if current is None:
            return {"bridge": None}
        return {"bridge": {"name": self.name, "addresses": current["addresses"],
                           "mtu": current["mtu"], "operstate": current["operstate"],
                           "ports": current.get("ports", [])}}


# ---------------------------------------------------------------------------
class Veth(NetResource):
    """A veth pair: host end (optionally on a bridge), peer end in a namespace."""

    def __init__(self, netlink, name, peer, state="present", netns=None, bridge=None,
                 addresses=None, gateway=None, mtu=None, hairpin=None, force=False,
                 check_mode=False):
        super().__init__(netlink, state, force, check_mode)
        self.name = validate.ifname("name", name)
        self.hairpin = hairpin
        self.peer = validate.ifname("peer", peer)
        if state == "present" and peer == name and not netns:
            raise validate.InvalidInput("peer", "must differ from name (%s) when both ends are in the host namespace" % name)
        self.netns = validate.nsname("netns", netns) if netns else None
        self.bridge = validate.ifname("bridge", bridge) if bridge else None
        self.addresses = validate.cidrs("addresses", addresses)
        self.gateway = validate.gateway("gateway", gateway, self.addresses) if gateway else None
        if self.gateway is not None and not self.netns:
            raise validate.InvalidInput(
                "gateway", "needs netns: a default route for a peer in the host namespace "
                "would replace the host's own default route")
        self.mtu = validate.mtu("mtu", mtu)
        self.host = netlink.ipr()

    # --- reading ------------------------------------------------------------
    def _peer_ipr(self):
        if self.netns and not self.nl.ns_exists(self.netns):
            return None
        return self.nl.ipr(self.netns)

    def read(self):
        """Host end, the paired peer (wherever it is) and the namespace side."""
        state = {"host": None, "peer": None, "peer_where": None, "stray": None,
                 "master": None, "routes": [], "ns_missing": False}
        peer_ipr = self._peer_ipr()
        state["ns_missing"] = peer_ipr is None
        host = find_link(self.host, self.name)
        if host is not None:
            state["host"] = link_view(self.host, host, addresses=False)
            master = state["host"]["master_index"]
            state["master"] = link_name(self.host, master)
        if peer_ipr is not None:
            peer = find_link(peer_ipr, self.peer)
            if peer is not None:
                peer = link_view(peer_ipr, peer)
                h = state["host"]
                paired = (h is not None and peer["kind"] == "veth"
                          and h["peer_index"] == peer["index"]()
                          and peer["peer_index"] == h["index"]())
                if self.netns is None and h is not None and peer["name"] == h["name"]:
                    paired = False
                state["peer" if paired else "stray"] = peer
                if paired:
                    state["peer_where"] = "netns"
            if self.netns and self.gateway is not None:
                state["routes"] = default_routes(peer_ipr, 10 if self.gateway.version == 6 else 2)
        if state["host"] and state["peer"] is None and self.netns:
            # Half-built: the peer may still sit in the host namespace.
            peer = find_link(self.host, self.peer)
            if peer is not None:
                peer = link_view(self.host, peer)
                if (peer["kind"] == "veth" and peer["peer_index"] == state["host"]["index"]()
                        and state["host"]["peer_index"] == peer["index"]()):
                    state["peer"], state["peer_where"] = peer, "host"
        return state

    # --- planning -------------------------------------------------------------
    def plan(self, current):
        self.check_kind(current["host"], "veth")
        if self.state == "absent":
            return self.delete_steps(self.host, current["host"], "veth")
        return self._plan_present(current)

    def _plan_present(self, current):
        ops = []
        bridge = self.depends(self.host, "bridge", self.bridge, "bridge") if self.bridge else None
        if current["ns_missing"]:
            self.missing("netns", "network namespace %s" % self.netns)
            peer_ipr = None
        else:
            peer_ipr = self.nl.ipr(self.netns)
        host, peer, stray = current["host"], current["peer"], current["stray"]
        ns = self.netns

        if stray is not None and (peer is None or stray is not peer):
            if stray["alias"] != OWNER_MARK and not self.force:
                raise PlanError(
                    "peer: %s already exists in %s and is not the other end of %s; "
                    "set force: true to replace it" % (self.peer, ns or "the host namespace", self.name))
            ops.append(Op(ip_cmd(ns, "link", "del", self.peer), peer_ipr.link, "del",
                          index=stray["index"]()))
        if host is not None and peer is None:
            # A pair whose other end is elsewhere or renamed: rebuild it.
            if host["alias"] != OWNER_MARK:
                self.adopt("veth", self.name)
            ops.append(Op(ip_cmd(None, "link", "del", self.name), self.host.link, "del",
                          index=host["index"]()))
            host = None
        elif host is not None and host["alias"] != OWNER_MARK:
            self.adopt("veth", self.name)

        if host is None:
            ops.append(self._create_op())
            host = planned_link(self.host, self.name, "veth")
            peer = planned_link(peer_ipr, self.peer, "veth")
        elif current["peer_where"] == "host":
            ops.append(Op(ip_cmd(None, "link", "set", self.peer, "netns", ns),
                          self._move_peer, peer))
            peer = dict(planned_link(peer_ipr, self.peer, "veth"), mtu=peer["mtu"],
                        alias=peer["alias"])

        # (In check mode without the namespace, peer_ipr is None: these Ops
        # are only shown, never run.)
        ops += self.link_steps(self.host, None, host, mtu=self.mtu, master=bridge,
                               hairpin=self.hairpin if self.bridge else None)
        ops += self.link_steps(peer_ipr, ns, peer, mtu=self.mtu)
        ops += self.address_steps(peer_ipr, ns, peer, self.addresses)
        if self.gateway is not None:
            gw = str(self.gateway)
            routes = current["routes"] if peer is current["peer"] else []
            if routes != [gw]:
                family = 10 if self.gateway.version == 6 else 2
                dst = "::/0" if family == 10 else "0.0.0.0/0"
                ops.append(Op(ip_cmd(ns, "route", "replace", "default", "via", gw),
                              lambda: peer_ipr.route("replace", dst=dst, gateway=gw, family=family)))
        return ops

    def _create_op(self):
        words = ["link", "add", self.name, "type", "veth", "peer", "name", self.peer]
        if self.netns:
            words += ["netns", self.netns]
        return Op(ip_cmd(None, *words), self._create)

    def _create(self):
        # One message creates the pair with its peer already in the namespace.
        peer = {"ifname": self.peer}
        fd = None
        if self.netns:
            fd = self.nl.ns_fd(self.netns)
            peer["net_ns_fd"] = fd
        try:
            self.host.link("add", ifname=self.name, kind="veth", peer=peer)
        finally:
            if fd is not None:
                os.close(fd)

    def _move_peer(self, peer):
        fd = self.nl.ns_fd(self.netns)
        try:
            self.host.link("set", index=peer["index"](), net_ns_fd=fd)
        finally:
            os.close(fd)

    # --- describing -----------------------------------------------------------
    def view(self, current):
        host, peer = current["host"], current["peer"]
        if host is None:
            return dict(ABSENT)
        where = self.netns if current["peer_where"] == "netns" else (
            "host" if current["peer_where"] == "host" else None)
        view = {"state": "present", "name": self.name, "owned": host["alias"] == OWNER_MARK,
                "kind": host["kind"], "up": host["up"], "mtu": host["mtu"],
                "hairpin": bool(host.get("hairpin")),
                "bridge": current["master"], "peer": self.peer if peer else None,
                "peer_netns": where if self.netns else None}
        if peer is not None:
            view.update(peer_up=peer["up"], peer_mtu=peer["mtu"],
                        addresses=sorted(peer["addresses"]))
            if self.gateway is not None:
                view["gateway"] = current["routes"][0] if current["routes"] else None
        return view

    def predict(self, before):
        if self.state == "absent":
            return dict(ABSENT)
        after = dict(before, state="present", name=self.name, owned=True, kind="veth",
                     up=True, peer=self.peer, peer_up=True,
                     peer_netns=self.netns)
        after.setdefault("addresses", [])
        after.setdefault("bridge", None)
        if self.bridge:
            after["bridge"] = self.bridge
        if self.hairpin is not None and self.bridge:
            after["hairpin"] = self.hairpin
        after.setdefault("hairpin", False)
        if self.mtu is not None:
            after["mtu"] = after["peer_mtu"] = self.mtu
        if self.addresses is not None:
            after["addresses"] = sorted(str(a) for a in self.addresses)
        if self.gateway is not None:
            after["gateway"] = str(self.gateway)
        return after

    def facts(self, current):
        view = self.view(current)
        return {"veth": None if view == ABSENT else view}


# ---------------------------------------------------------------------------
class Vxlan(NetResource):
    """A VXLAN device joining this host's bridge to other hosts' over the underlay.

    Flooding goes to every remote by head-end replication: one all-zeros FDB
    entry per remote (`bridge fdb append 00:00:00:00:00:00 dev vx0 dst REMOTE`),
    so no multicast is needed on the underlay.
    """

    ZERO_MAC = "00:00:00:00:00:00"

    def __init__(self, netlink, name, vni=None, state="present", local=None, dev=None, port=4789,
                 remotes=None, bridge=None, mtu=None, force=False, check_mode=False):
        super().__init__(netlink, state, force, check_mode)
        self.name = validate.ifname("name", name)
        if state == "present":
            if isinstance(vni, bool) or not isinstance(vni, int) or not 0 < vni < 1 << 24:
                raise validate.InvalidInput("vni", "%r must be an integer from 1 to 16777215" % (vni,))
            if local is None:
                raise validate.InvalidInput("local", "is required: the underlay address of this host")
        self.vni = vni
        self.local = str(validate.address("local", local)) if local else None
        self.dev = validate.ifname("dev", dev) if dev else None
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise validate.InvalidInput("port", "%r must be a port from 1 to 65535" % (port,))
        self.port = port
        self.remotes = []
        for remote in remotes or []:
            remote = str(validate.address("remotes", remote))
            if remote == self.local:
                raise validate.InvalidInput("remotes", "%s is this host's own address (local)" % remote)
            if remote in self.remotes:
                raise validate.InvalidInput("remotes", "%s is listed twice" % remote)
            self.remotes.append(remote)
        self.bridge = validate.ifname("bridge", bridge) if bridge else None
        self.mtu = validate.mtu("mtu", mtu)
        self.ipr = netlink.ipr()

    def read(self):
        link = find_link(self.ipr, self.name)
        if link is None:
            return None
        state = link_view(self.ipr, link, addresses=False)
        if state["kind"] == "vxlan":
            data = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
            state.update(vni=data.get_attr("IFLA_VXLAN_ID"), local=data.get_attr("IFLA_VXLAN_LOCAL"),
                         port=data.get_attr("IFLA_VXLAN_PORT"),
                         dev=link_name(self.ipr, data.get_attr("IFLA_VXLAN_LINK")),
                         master=link_name(self.ipr, state["master_index"]),
                         remotes=sorted(
                             m.get_attr("NDA_DST") for m in self.ipr.fdb("dump", ifindex=link["index"])
                             if m.get_attr("NDA_LLADDR") == self.ZERO_MAC and m.get_attr("NDA_DST")))
        return state

    def plan(self, current):
        name = self.name
        self.check_kind(current, "vxlan")
        if self.state == "absent":
            return self.delete_steps(self.ipr, current, "vxlan")
        ops = []
        bridge = self.depends(self.ipr, "bridge", self.bridge, "bridge") if self.bridge else None
        dev = self.depends(self.ipr, "dev", self.dev) if self.dev else None
        if current is not None and (current["vni"], current["local"], current["port"], current["dev"]) != (
                self.vni, self.local, self.port, self.dev if self.dev else current["dev"]):
            # The kernel cannot change these on a live device: re-create it.
            if current["alias"] != OWNER_MARK:
                self.adopt("vxlan", name)
            ops.append(Op(ip_cmd(None, "link", "del", name), self.ipr.link, "del",
                          index=current["index"]()))
            current = None
        elif current is not None and current["alias"] != OWNER_MARK:
            self.adopt("vxlan", name)
        if current is None:
            words = ["link", "add", name, "type", "vxlan", "id", str(self.vni), "local", self.local,
                     "dstport", str(self.port)]
            if self.dev:
                words += ["dev", self.dev]
            ops.append(Op(ip_cmd(None, *words), self._create, dev))
            current = dict(planned_link(self.ipr, name, "vxlan"), remotes=[])
        ops += self.link_steps(self.ipr, None, current, mtu=self.mtu, master=bridge)
        link = current
        for remote in self.remotes:
            if remote not in current["remotes"]:
                ops.append(Op(render(["bridge", "fdb", "append", self.ZERO_MAC, "dev", name, "dst", remote]),
                              lambda r=remote: self.ipr.fdb("append", ifindex=link["index"](),
                                                            lladdr=self.ZERO_MAC, dst=r)))
        for remote in current["remotes"]:
            if remote not in self.remotes:
                ops.append(Op(render(["bridge", "fdb", "del", self.ZERO_MAC, "dev", name, "dst", remote]),
                              lambda r=remote: self.ipr.fdb("del", ifindex=link["index"](),
                                                            lladdr=self.ZERO_MAC, dst=r)))
        return ops

    def _create(self, dev):
        kwargs = dict(ifname=self.name, kind="vxlan", vxlan_id=self.vni, vxlan_local=self.local,
                      vxlan_port=self.port, vxlan_learning=1)
        if dev is not None:
            kwargs["vxlan_link"] = dev["index"]()
        self.ipr.link("add", **kwargs)

    def view(self, current):
        if current is None:
            return dict(ABSENT)
        return {"state": "present", "name": self.name, "kind": current["kind"],
                "owned": current["alias"] == OWNER_MARK, "vni": current.get("vni"),
                "local": current.get("local"), "port": current.get("port"), "dev": current.get("dev"),
                "bridge": current.get("master"), "mtu": current["mtu"], "up": current["up"],
                "remotes": current.get("remotes", [])}

    def predict(self, before):
        if self.state == "absent":
            return dict(ABSENT)
        after = dict(before, state="present", name=self.name, kind="vxlan", owned=True,
                     vni=self.vni, local=self.local, port=self.port, up=True,
                     remotes=sorted(self.remotes))
        after.setdefault("dev", self.dev)
        after["dev"] = self.dev or after["dev"]
        after.setdefault("bridge", None)
        if self.bridge:
            after["bridge"] = self.bridge
        if self.mtu is not None:
            after["mtu"] = self.mtu
        return after

    def facts(self, current):
        view = self.view(current)
        return {"vxlan": None if view == ABSENT else view}


def run_net_module(module, factory):
    """Module glue for the network models: pyroute2 check, one Netlink, converge."""
    from ansible.module_utils.basic import missing_required_lib

    from ansible_collections.handbuilt.containers.plugins.module_utils.netlink import (
        HAS_PYROUTE2,
        PYROUTE2_IMPORT_ERROR,
        Netlink,
    )
    from ansible_collections.handbuilt.containers.plugins.module_utils.resource import run_module

    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=str(PYROUTE2_IMPORT_ERROR))
    netlink = Netlink()
    run_module(module, lambda params: factory(netlink, params), cleanup=netlink.close)
