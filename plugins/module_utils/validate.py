# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input validation shared by every module.

Each check raises InvalidInput naming the parameter, before anything on the
host is touched.
"""

from __future__ import annotations

import ipaddress
import os
import re

IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL
MTU_MIN = 68  # the smallest MTU IPv4 allows
MTU_MAX = 65535
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class InvalidInput(ValueError):
    """Bad input; the message names the parameter and says what is wrong."""

    def __init__(self, param, message):
        super().__init__("%s: %s" % (param, message))
        self.param = param


def _check_name_chars(param, name):
    if not isinstance(name, str) or not name:
        raise InvalidInput(param, "must be a non-empty string")
    if "/" in name:
        raise InvalidInput(param, "%r must not contain '/'" % name)
    if ".." in name or name == ".":
        raise InvalidInput(param, "%r must not be '.' or contain '..'" % name)
    if any(c.isspace() for c in name) or "\0" in name:
        raise InvalidInput(param, "%r must not contain spaces or control characters" % name)


def ifname(param, name):
    """A Linux interface name: 1-15 bytes, no '/', ':', whitespace or '..'."""
    _check_name_chars(param, name)
    if ":" in name:
        raise InvalidInput(param, "%r must not contain ':'" % name)
    if len(name.encode("utf-8")) >= IFNAMSIZ:
        raise InvalidInput(
            param, "%r is %d bytes; interface names are at most %d bytes"
            % (name, len(name.encode("utf-8")), IFNAMSIZ - 1))
    return name


def nsname(param, name):
    """A network namespace name, used as a file name under /run/netns."""
    _check_name_chars(param, name)
    if len(name.encode("utf-8")) > 64:
        raise InvalidInput(param, "%r is longer than 64 bytes" % name)
    return name


def cidr(param, value):
    """An interface address with its prefix, e.g. 10.10.0.1/24."""
    if not isinstance(value, str) or "/" not in value:
        raise InvalidInput(param, "%r is not an address with a prefix length (like 10.10.0.1/24)" % (value,))
    try:
        iface = ipaddress.ip_interface(value.strip())
    except ValueError as exc:
        raise InvalidInput(param, "%r is not a valid CIDR address: %s" % (value, exc))
    return iface


def cidrs(param, values):
    if values is None:
        return None
    result = []
    for value in values:
        iface = cidr(param, value)
        if iface in result:
            raise InvalidInput(param, "%s is listed twice" % iface)
        result.append(iface)
    return result


def network(param, value):
    """A network such as 10.10.0.0/24 (host bits must be zero)."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError as exc:
        raise InvalidInput(param, "%r is not a valid network CIDR: %s" % (value, exc))


def address(param, value):
    """A plain IP address (no prefix)."""
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InvalidInput(param, "%r is not an IP address" % (value,))


def gateway(param, value, addresses):
    """A gateway address that lies inside one of ``addresses``' subnets."""
    try:
        gw = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InvalidInput(param, "%r is not an IP address" % (value,))
    if addresses is not None and not any(gw in a.network for a in addresses if a.version == gw.version):
        raise InvalidInput(
            param, "%s is outside every subnet of addresses (%s): it would be unreachable"
            % (gw, ", ".join(str(a) for a in addresses) or "none"))
    if addresses is not None and any(gw == a.ip for a in addresses):
        raise InvalidInput(param, "%s is the interface's own address" % gw)
    return gw


def mtu(param, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not MTU_MIN <= value <= MTU_MAX:
        raise InvalidInput(param, "%r must be an integer between %d and %d" % (value, MTU_MIN, MTU_MAX))
    return value


def port(param, value):
    """A TCP/UDP port, 1-65535 (a string of digits counts, as Ansible's int type converts it)."""
    if isinstance(value, bool):
        raise InvalidInput(param, "%r is not a port number" % (value,))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(param, "%r must be a port number between 1 and 65535" % (value,))
    return value


def size(param, value, allow_max=True):
    """Bytes from '50M', '1G', '1024', 4096 or 'max' (returned as 'max')."""
    if isinstance(value, bool):
        raise InvalidInput(param, "%r is not a size" % (value,))
    if isinstance(value, int):
        if value < 0:
            raise InvalidInput(param, "%r must not be negative" % value)
        return value
    text = str(value).strip()
    if allow_max and text.lower() == "max":
        return "max"
    match = _SIZE_RE.match(text)
    if not match or (match.group(3) and not match.group(2) and match.group(3).lower() != "b"):
        raise InvalidInput(param, "%r is not a size (use bytes or a suffix K, M, G, T%s)"
                           % (value, ", or 'max'" if allow_max else ""))
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def abspath(param, value, forbid=()):
    """An absolute, normalised path with no '..' components."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidInput(param, "%r must be an absolute path" % (value,))
    if ".." in value.split("/") or "\0" in value:
        raise InvalidInput(param, "%r must not contain '..'" % value)
    norm = os.path.normpath(value)
    if norm in forbid:
        raise InvalidInput(param, "%r is a system directory and cannot be used here" % value)
    return norm
