# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that talks netlink and enters network namespaces.

Works with pyroute2 0.7.x (Debian 12's python3-pyroute2) and 0.9.x (PyPI):
only the plain ``IPRoute`` API both share is used. A socket for another
namespace is opened by entering it with setns(2) in this thread, creating the
socket (it stays bound to that namespace) and returning at once: no forked
helper per namespace (pyroute2's ``netns=`` forks, and 0.9 would even create a
missing namespace).
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import os
import sys
import types


def _lab_without_mock():
    lab = types.ModuleType("pyroute2.lab")
    lab.use_mock = False
    lab.registry = []
    lab.LAB_API = type("LAB_API", (), {"__module__": "pyroute2.lab"})
    return lab


def _import_pyroute2():
    """``IPRoute`` and ``NetlinkError``, skipping pyroute2's package ``__init__`` where it can.

    pyroute2 0.7's ``__init__`` imports every class its distribution declares as an
    entry point (IPDB, NDB, conntrack, nftables...): ~50 ms of each module's start on
    Debian 12 (0.9: 20-40 ms), for the one class used here. Its submodules need nothing
    from that ``__init__``, so they are imported under a bare package object, which
    then leaves ``sys.modules``: a later ``import pyroute2`` runs the real ``__init__``
    over the same submodules. Anything unexpected falls back to the plain import.

    0.7's ``IPRoute`` also derives from ``pyroute2.lab.LAB_API``, whose module imports
    ``unittest.mock`` (and with it asyncio and ssl: another ~45 ms) for a switch that
    wraps every method in a mock, off unless pyroute2's own docs lab turns it on. It
    is given an empty class in its place, which is what LAB_API is with the switch off.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is not None and spec.submodule_search_locations:
            stubs = {"pyroute2": importlib.util.module_from_spec(spec)}
            if "pyroute2.lab" not in sys.modules:
                stubs["pyroute2.lab"] = _lab_without_mock()
            sys.modules.update(stubs)
            try:
                from pyroute2.iproute.linux import IPRoute as iproute
                from pyroute2.netlink.exceptions import NetlinkError as error
                return iproute, error
            except Exception:
                pass
            finally:
                for name in stubs:
                    del sys.modules[name]
    from pyroute2 import IPRoute as iproute, NetlinkError as error
    return iproute, error


try:
    IPRoute, NetlinkError = _import_pyroute2()
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except ImportError as exc:  # reported by the module with missing_required_lib
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = exc
    IPRoute = None

    class NetlinkError(Exception):
        code = 0

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2
OWNER_MARK = "handbuilt.containers"  # the ifalias on every link the collection owns

_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def setns(fd, nstype=CLONE_NEWNET):
    _check(libc().setns(fd, nstype), "setns")


def mount(source, target, fstype, flags, data=None):
    _check(libc().mount(
        source.encode() if source else None, target.encode(),
        fstype.encode() if fstype else None, flags,
        data.encode() if data else None), "mount %s" % target)


def umount(target, flags=0):
    _check(libc().umount2(target.encode(), flags), "umount %s" % target)


def describe_error(exc):
    """One readable line for a kernel error, whichever library raised it."""
    if isinstance(exc, NetlinkError):
        code = getattr(exc, "code", 0) or 0
        name = errno.errorcode.get(code, str(code))
        return "RTNETLINK answers: %s (%s)" % (os.strerror(code), name)
    if isinstance(exc, OSError) and exc.errno:
        return "%s (%s)" % (exc.strerror or exc, errno.errorcode.get(exc.errno, exc.errno))
    return str(exc) or type(exc).__name__


def is_namespace_file(path):
    """``path`` is a namespace bind-mounted on a file (as `ip netns add` leaves it), not
    the plain file under it: every namespace's inode lives on the one nsfs device.
    A stat each, where scanning mountinfo cost O(mounts) per namespace."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


class Netlink:
    """Netlink sockets for the host and for named namespaces, opened lazily.

    One instance per module run; every socket is closed by ``close()``.
    """

    def __init__(self, netns_dir="/run/netns"):
        self.netns_dir = netns_dir
        self._sockets = {}
        self.caching = False  # see cache_links()

    # --- reading many links before writing any ----------------------------
    def cache_links(self):
        """Answer link lookups from one dump per namespace, until the first write.

        compose reads every container's links before it knows whether anything
        must change; on a re-run nothing does, and one dump of the host's links
        replaces three lookups per container. The first write anywhere
        (``stop_caching()``, which every plan calls before it applies) ends it for the run.
        """
        self.caching = True

    def stop_caching(self):
        self.caching = False
        for sock in self._sockets.values():
            sock.links = None

    # --- namespaces -------------------------------------------------------
    def ns_path(self, name):
        return os.path.join(self.netns_dir, name)

    def ns_exists(self, name):
        path = self.ns_path(name)
        return is_namespace_file(path)

    def ns_inode(self, name):
        try:
            return os.stat(self.ns_path(name)).st_ino
        except OSError:
            return None

    def create_ns(self, name):
        """What `ip netns add NAME` does: a new namespace bind-mounted on a file."""
        self.stop_caching()
        path = self.ns_path(name)
        if not os.path.isdir(self.netns_dir):
            os.makedirs(self.netns_dir, 0o755)
        # Like iproute2: make the directory a shared mount point, so the
        # namespace mounts propagate to every mount namespace on the host. Ask the
        # kernel (EINVAL: not a mount point) rather than /proc/self/mountinfo,
        # which also lists mounts hidden under a later one.
        try:
            mount("", self.netns_dir, None, MS_SHARED | MS_REC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            mount(self.netns_dir, self.netns_dir, None, MS_BIND | MS_REC)
            mount("", self.netns_dir, None, MS_SHARED | MS_REC)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.close(fd)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(libc().unshare(CLONE_NEWNET), "unshare")
            try:
                mount("/proc/thread-self/ns/net", path, None, MS_BIND)
            finally:
                setns(home)
        except Exception:
            os.unlink(path)
            raise
        finally:
            os.close(home)

    def delete_ns(self, name, links_first=True):
        """What `ip netns del NAME` does, by default after removing its links first.

        Deleting the links synchronously makes the host ends of veth pairs
        vanish now, not whenever the kernel's cleanup worker gets to it, so
        the same names can be created again straight away. Without
        ``links_first`` the kernel removes them with the namespace, in one
        batch with every other namespace that dies meanwhile (compose's
        teardown, which then waits for the host ends once).
        """
        self.stop_caching()
        path = self.ns_path(name)
        if name in self._sockets:
            ipr = self._sockets.pop(name)
            for link in ipr.get_links() if links_first else ():
                if get_kind(link) and link["index"] != 1:
                    try:
                        ipr.link("del", index=link["index"])
                    except NetlinkError:
                        pass  # already gone with its peer
            ipr.close()
        umount(path, MNT_DETACH)
        os.unlink(path)

    # --- sockets ----------------------------------------------------------
    def ipr(self, netns=None):
        """An IPRoute socket in ``netns`` (None: the namespace we run in)."""
        key = netns or ""
        if key not in self._sockets:
            if not netns:
                self._sockets[key] = Socket(self, IPRoute())
            else:
                self._sockets[key] = Socket(self, self._open_in(netns))
        return self._sockets[key]

    def _open_in(self, netns):
        target = os.open(self.ns_path(netns), os.O_RDONLY)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            setns(target)
            try:
                return IPRoute()
            finally:
                setns(home)
        finally:
            os.close(target)
            os.close(home)

    def ns_fd(self, netns):
        """An fd of a namespace, for IFLA_NET_NS_FD; the caller closes it."""
        return os.open(self.ns_path(netns), os.O_RDONLY)

    def close(self):
        for ipr in self._sockets.values():
            try:
                ipr.close()
            except Exception:
                pass
        self._sockets = {}


class Socket:
    """An IPRoute socket that answers link lookups from one dump while its Netlink caches.

    Only ``link("get", ifname=|index=)`` and ``get_links()`` are served from the
    dump; everything else goes to the socket, and any other ``link`` call (a
    write) ends caching for the whole run.
    """

    def __init__(self, netlink, ipr):
        self._netlink = netlink
        self._ipr = ipr
        self.links = None  # (by name, by index) of one dump

    def _dump(self):
        if self.links is None:
            links = list(self._ipr.get_links())
            self.links = ({msg.get_attr("IFLA_IFNAME"): msg for msg in links},
                          {msg["index"]: msg for msg in links})
        return self.links

    def get_links(self, *args, **kwargs):
        if self._netlink.caching and not args and not kwargs:
            return list(self._dump()[1].values())
        return self._ipr.get_links(*args, **kwargs)

    def link(self, command, **kwargs):
        if command == "get" and self._netlink.caching and len(kwargs) == 1:
            field, value = next(iter(kwargs.items()))
            if field in ("ifname", "index"):
                found = self._dump()[0 if field == "ifname" else 1].get(value)
                if found is None:
                    raise NetlinkError(errno.ENODEV, "No such device")
                return [found]
        elif command != "get":
            self._netlink.stop_caching()
        return self._ipr.link(command, **kwargs)

    def __getattr__(self, name):
        return getattr(self._ipr, name)


# --- reading links ----------------------------------------------------------
def get_kind(link):
    return info_kind(link.get_attr("IFLA_LINKINFO"))


def info_kind(info):
    """The kind (veth, bridge...) of a link's IFLA_LINKINFO, or None."""
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def find_link(ipr, ifname):
    """The link message named ``ifname``, or None."""
    try:
        found = ipr.link("get", ifname=ifname)
    except NetlinkError as exc:
        if exc.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise
    return found[0] if found else None


def link_name(ipr, index):
    if not index:
        return None
    try:
        found = ipr.link("get", index=index)
    except NetlinkError:
        return None
    return found[0].get_attr("IFLA_IFNAME") if found else None


def link_addresses(ipr, index):
    """The interface's IPv4/IPv6 addresses as CIDR strings (link-local v6 left out)."""
    result = []
    for msg in ipr.get_addr(index=index):
        addr = msg.get_attr("IFA_ADDRESS")
        if msg["family"] == 10 and addr.lower().startswith("fe80:"):
            continue
        result.append("%s/%d" % (addr, msg["prefixlen"]))
    return result


def bridge_port_hairpin(info):
    """Hairpin mode of a bridge port, from its IFLA_LINKINFO (None when not a bridge port)."""
    if info is None or info.get_attr("IFLA_INFO_SLAVE_KIND") != "bridge":
        return None
    data = info.get_attr("IFLA_INFO_SLAVE_DATA")
    return bool(data.get_attr("IFLA_BRPORT_MODE")) if data is not None else None


def attributes(msg, *names):
    """The values of a message's attributes ``names`` (None where absent), in one pass.

    get_attr scans every attribute of the message per call - a link carries
    about fifty - where one pass over them serves every name asked for.
    """
    wanted = dict.fromkeys(names)
    for nla in msg["attrs"]:
        name = nla[0]
        if name in wanted and wanted[name] is None:
            wanted[name] = nla[1]  # decodes only the attributes asked for
    return [wanted[name] for name in names]


def describe_link(ipr, link, addresses=True):
    """A plain dict of what the collection manages on a link.

    Reading addresses dumps every address of the namespace (the kernel does not
    filter by interface), so callers skip it where addresses are not managed:
    the host ends of hundreds of veths must not cost a dump each.
    """
    name, alias, mtu, operstate, master, peer, info = attributes(
        link, "IFLA_IFNAME", "IFLA_IFALIAS", "IFLA_MTU", "IFLA_OPERSTATE", "IFLA_MASTER", "IFLA_LINK",
        "IFLA_LINKINFO")
    return {
        "hairpin": bridge_port_hairpin(info),
        "name": name,
        "index": link["index"],
        "kind": info_kind(info),
        "alias": alias,
        "mtu": mtu,
        "up": bool(link["flags"] & 1),
        "operstate": operstate,
        "master_index": master,
        "peer_index": peer,
        "addresses": link_addresses(ipr, link["index"]) if addresses else None,
    }


def default_routes(ipr, family=2):
    """Gateways of the main table's default routes (dst length 0)."""
    gateways = []
    for route in ipr.get_routes(family=family, table=254):
        if route["dst_len"] == 0 and route.get_attr("RTA_GATEWAY"):
            gateways.append(route.get_attr("RTA_GATEWAY"))
    return gateways
