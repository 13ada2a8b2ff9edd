# -*- coding: utf-8 -*-
"""The payload cache's pure logic: its key, where it lives, saving and restoring files."""

from __future__ import annotations

import os

import pytest

from ansible_collections.handbuilt.containers.plugins.plugin_utils import payload_cache as pc

PREFIX = "ansible_collections.handbuilt.containers.plugins.modules.netns-"


@pytest.fixture
def sources(tmp_path):
    utils = tmp_path / "module_utils"
    (utils / "sub").mkdir(parents=True)
    (utils / "a.py").write_text("A = 1\n")
    (utils / "sub" / "b.py").write_text("B = 2\n")
    module = tmp_path / "netns.py"
    module.write_text("print('netns')\n")
    return str(module), [str(utils)]


def test_key_is_stable_and_named_after_the_module(sources):
    module, dirs = sources
    assert pc.key("netns", module, dirs, "2.21.5") == pc.key("netns", module, dirs, "2.21.5")
    assert pc.key("netns", module, dirs, "2.21.5").startswith("netns-")


@pytest.mark.parametrize("change", ["module_util", "new_file", "module", "version", "pycache"])
def test_key_changes_with_every_source_but_not_with_bytecode(sources, change):
    module, dirs = sources
    before = pc.key("netns", module, dirs, "2.21.5")
    version = "2.21.5"
    utils = dirs[0]
    if change == "module_util":
        with open(os.path.join(utils, "sub", "b.py"), "a") as fh:
            fh.write("C = 3\n")
    elif change == "new_file":
        with open(os.path.join(utils, "c.py"), "w") as fh:
            fh.write("")
    elif change == "module":
        st = os.stat(module)
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    elif change == "version":
        version = "2.21.6"
    else:
        os.mkdir(os.path.join(utils, "__pycache__"))
        with open(os.path.join(utils, "__pycache__", "a.cpython-311.py"), "w") as fh:
            fh.write("")
    after = pc.key("netns", module, dirs, version)
    assert (after == before) == (change == "pycache")


def test_default_root_follows_the_environment():
    assert pc.default_root({"HANDBUILT_PAYLOAD_CACHE": "off"}) is None
    assert pc.default_root({"HANDBUILT_PAYLOAD_CACHE": "/x/y"}) == "/x/y"
    assert pc.default_root({"XDG_CACHE_HOME": "/c"}) == "/c/handbuilt.containers/ansiballz"


def test_usable_only_when_private(tmp_path):
    root = tmp_path / "cache"
    assert pc.usable(str(root))
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    root.chmod(0o777)
    assert not pc.usable(str(root))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    assert not pc.usable(str(link))


def test_save_then_restore_round_trip(tmp_path):
    root, run1, run2 = (str(tmp_path / d) for d in ("root", "run1", "run2"))
    for d in (root, run1):
        os.makedirs(d)
    with open(os.path.join(run1, PREFIX + "ZIP_DEFLATED-none"), "wb") as fh:
        fh.write(b"payload")
    for other in (PREFIX + "ZIP_DEFLATED-none.lock", "ansible.legacy.ping-ZIP_DEFLATED-none"):
        open(os.path.join(run1, other), "w").close()

    assert pc.save(root, "netns-x-1", run1, PREFIX)
    assert os.listdir(os.path.join(root, "netns-x-1")) == [PREFIX + "ZIP_DEFLATED-none"]
    assert not pc.save(root, "netns-x-1", run1, PREFIX)  # already saved

    assert pc.restore(root, "netns-x-1", run2) == 1
    with open(os.path.join(run2, PREFIX + "ZIP_DEFLATED-none"), "rb") as fh:
        assert fh.read() == b"payload"
    assert pc.restore(root, "netns-x-1", run2) == 0  # Ansible's own copy is never overwritten
    assert pc.restore(root, "netns-x-2", run2) == 0  # nothing saved under that key


def test_a_new_key_replaces_the_older_entries_of_the_module_in_that_checkout(tmp_path):
    root, run = str(tmp_path / "root"), str(tmp_path / "run")
    os.makedirs(run)
    open(os.path.join(run, PREFIX + "ZIP_STORED"), "w").close()
    for entry in ("netns-here-old", "netns-there-old", "bridge-here-other"):
        os.makedirs(os.path.join(root, entry))
    assert pc.save(root, "netns-here-new", run, PREFIX)
    assert sorted(os.listdir(root)) == ["bridge-here-other", "netns-here-new", "netns-there-old"]


def test_two_checkouts_have_keys_of_their_own(tmp_path, sources):
    module, dirs = sources
    other = tmp_path / "elsewhere.py"
    other.write_text(open(module).read())
    st = os.stat(module)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    here, there = pc.key("netns", module, dirs, "1"), pc.key("netns", str(other), dirs, "1")
    assert here.split("-")[:2] != there.split("-")[:2]


def test_nothing_built_nothing_saved(tmp_path):
    root, run = str(tmp_path / "root"), str(tmp_path / "run")
    os.makedirs(root)
    assert not pc.save(root, "netns-x-1", run, PREFIX)
    assert os.listdir(root) == []


def test_every_module_runs_through_the_caching_action():
    import yaml
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "meta", "runtime.yml")) as fh:
        routing = yaml.safe_load(fh)["plugin_routing"]["modules"]
    modules = sorted(n[:-3] for n in os.listdir(os.path.join(repo, "plugins", "modules"))
                     if n.endswith(".py") and not n.startswith("_"))
    assert sorted(routing) == modules
    assert {r["action_plugin"] for r in routing.values()} == {"handbuilt.containers.run_module"}
