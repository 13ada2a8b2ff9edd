# -*- coding: utf-8 -*-
"""How module_utils/netlink imports pyroute2: past the package's ``__init__`` (which loads
every entry point of the distribution), falling back to the plain import. Each case runs
in a fresh interpreter - the controller's venv (PyPI pyroute2) and, where installed,
Debian's python3 with python3-pyroute2 0.7 - so no import state leaks between tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           ".collections")
INTERPRETERS = [sys.executable] + [p for p in ("/usr/bin/python3",)
                                   if os.path.exists(p) and os.path.realpath(p) != os.path.realpath(sys.executable)]


def run(python, code, path=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(list(path) + [COLLECTIONS]))
    proc = subprocess.run([python, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def has_pyroute2(python):
    return subprocess.run([python, "-c", "import pyroute2"], capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("python", INTERPRETERS)
def test_iproute_is_pyroute2s_own_without_its_package_init(python):
    if not has_pyroute2(python):
        pytest.skip("no pyroute2 for %s" % python)
    seen = run(python, """
        import json, sys
        from ansible_collections.handbuilt.containers.plugins.module_utils import netlink
        lean = {"has": netlink.HAS_PYROUTE2, "package_left_in_sys_modules": "pyroute2" in sys.modules,
                "entry_points_loaded": "pyroute2.ndb.main" in sys.modules}
        import pyroute2  # a later plain import runs the real __init__ over the same classes
        lean["same_iproute"] = pyroute2.IPRoute is netlink.IPRoute
        lean["same_error"] = pyroute2.NetlinkError is netlink.NetlinkError
        print(json.dumps(lean))
    """)
    assert seen == {"has": True, "package_left_in_sys_modules": False, "entry_points_loaded": False,
                    "same_iproute": True, "same_error": True}


@pytest.mark.parametrize("python", INTERPRETERS)
def test_pyroute2_0_7s_lab_module_and_its_unittest_mock_stay_unloaded(python):
    if not has_pyroute2(python):
        pytest.skip("no pyroute2 for %s" % python)
    seen = run(python, """
        import json, sys
        from ansible_collections.handbuilt.containers.plugins.module_utils import netlink
        lab_bases = [c.__name__ for c in netlink.IPRoute.__mro__ if c.__module__ == "pyroute2.lab"]
        seen = {"lab_left_in_sys_modules": "pyroute2.lab" in sys.modules, "lab_bases": lab_bases,
                "mock_loaded": "unittest.mock" in sys.modules}
        ipr = netlink.IPRoute()  # and the class still works: read the loopback (read only)
        seen["lo"] = ipr.link("get", index=1)[0].get_attr("IFLA_IFNAME")
        ipr.close()
        from importlib.metadata import version
        seen["version"] = version("pyroute2")
        print(json.dumps(seen))
    """)
    assert seen["lo"] == "lo" and not seen["lab_left_in_sys_modules"]
    if seen["version"].startswith("0.7."):
        # LAB_API is a base of 0.7's IPRoute; 0.9 has no pyroute2.lab and imports mock itself.
        assert seen["lab_bases"] == ["LAB_API"] and not seen["mock_loaded"]


def test_an_unexpected_layout_falls_back_to_the_plain_import(tmp_path):
    # A pyroute2 whose package exports IPRoute but has no pyroute2.iproute.linux.
    pkg = tmp_path / "pyroute2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        class IPRoute: pass
        class NetlinkError(Exception): pass
        INIT_RAN = True
    """))
    seen = run(sys.executable, """
        import json, sys
        from ansible_collections.handbuilt.containers.plugins.module_utils import netlink
        import pyroute2
        print(json.dumps({"has": netlink.HAS_PYROUTE2, "init_ran": pyroute2.INIT_RAN,
                          "plain": netlink.IPRoute is pyroute2.IPRoute}))
    """, path=[str(tmp_path)])
    assert seen == {"has": True, "init_ran": True, "plain": True}


def test_no_pyroute2_is_reported_not_raised(tmp_path):
    # A pyroute2 that cannot be imported at all: the module reports it (missing_required_lib).
    (tmp_path / "pyroute2.py").write_text("raise ImportError('No module named pyroute2 (test)')\n")
    seen = run(sys.executable, """
        import json
        from ansible_collections.handbuilt.containers.plugins.module_utils import netlink
        print(json.dumps({"has": netlink.HAS_PYROUTE2, "error": str(netlink.PYROUTE2_IMPORT_ERROR)}))
    """, path=[str(tmp_path)])
    assert seen == {"has": False, "error": "No module named pyroute2 (test)"}
