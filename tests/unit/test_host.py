# -*- coding: utf-8 -*-
"""host.installed_packages: dpkg's status database read without the apt cache."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import host

COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           ".collections")
STATUS = """\
Package: iproute2
Status: install ok installed
Priority: important
Architecture: amd64
Version: 6.1.0-3
Description: networking and traffic control tools
 The iproute2 suite is a collection of utilities.
 Package: not-a-field (a continuation line)

Package: nftables
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0.6-2

Package: tini
Status: install ok half-configured
Architecture: amd64
Version: 0.19.0-1

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9
"""


def test_only_installed_packages_count():
    found = host.installed_packages(["iproute2", "nftables", "tini", "not-a-field", "busybox"], STATUS)
    # removed with its config kept, or half-configured, is not installed: apt must run.
    assert found == {"iproute2": "6.1.0-3"}


def test_architecture_qualified_names():
    found = host.installed_packages(["libc6", "libc6:i386", "libc6:arm64"], STATUS)
    assert found == {"libc6": "2.36-9", "libc6:i386": "2.36-9"}


def test_last_stanza_without_a_blank_line_and_an_empty_database():
    assert host.installed_packages(["libc6:i386"], STATUS.rstrip("\n")) == {"libc6:i386": "2.36-9"}
    assert host.installed_packages(["iproute2"], "") == {}


@pytest.mark.parametrize("name, ok", [("iproute2", True), ("python3-pyroute2", True), ("g++", True),
                                      ("libc6:amd64", True), ("Bad", False), ("a", False),
                                      ("x; rm -rf /", False), ("-opt", False)])
def test_package_names(name, ok):
    assert bool(host.PACKAGE_NAME.match(name)) is ok


def test_pyroute2_version_without_importing_it():
    """0.7 imports all its entry points (0.1-0.2 s); the version comes from its metadata."""
    pytest.importorskip("pyroute2")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from ansible_collections.handbuilt.containers.plugins.module_utils import host\n"
            "from importlib import metadata\n"
            "assert host.pyroute2_version() == metadata.version('pyroute2')\n"
            "assert 'pyroute2' not in sys.modules\n" % COLLECTIONS)
    subprocess.run([sys.executable, "-c", code], check=True)
