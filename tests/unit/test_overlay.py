# -*- coding: utf-8 -*-
"""overlay_mount: mountinfo parsing and unescaping, validation, plans (no mounts made)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import overlay as ov
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import PlanError
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput

# Lines as this kernel (6.x) prints them for mounts made with escaped options.
LINE_SPACE = ("65 43 0:39 / /tmp/ovt/m\\0402 rw,relatime - overlay overlay "
              "rw,lowerdir=/tmp/ovt/l\\0401,upperdir=/tmp/ovt/u\\134\\054x\\040y,"
              "workdir=/tmp/ovt/w\\134:z,uuid=on")
LINE_COLON = ("66 43 0:40 / /tmp/ovt/m rw,relatime - overlay overlay "
              "rw,lowerdir=/tmp/ovt/l\\134:2:/tmp/ovt/l\\0401,upperdir=/tmp/ovt/u,workdir=/tmp/ovt/w")
LINE_COMMA = ("67 43 0:41 / /tmp/ovt/m rw,relatime - overlay overlay "
              "rw,lowerdir=/tmp/ovt/l\\134\\0543,upperdir=/tmp/ovt/u,workdir=/tmp/ovt/w")
LINE_DATA = ("68 43 0:42 / /m rw - overlay overlay rw,lowerdir=/a::/b")
LINE_PLUS = ("69 43 0:43 / /m rw - overlay overlay rw,lowerdir+=/a,lowerdir+=/b\\054c,datadir+=/d")
LINE_EXT4 = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw"
LINE_TMPFS = "30 22 0:25 / /run rw,nosuid,nodev shared:5 master:2 - tmpfs tmpfs rw,size=10m,mode=755"


def test_unescape_octal_and_backslash():
    assert ov.unescape_octal("/a\\040b\\011c\\012d\\134e") == "/a b\tc\nd\\e"
    assert ov.unescape_backslash("a\\,b\\:c\\\\d") == "a,b:c\\d"
    assert ov.unescape_backslash("trailing\\") == "trailing\\"


def test_mountinfo_spaces_commas_colons_in_upper_work_and_mountpoint():
    entry = ov.parse_mountinfo_line(LINE_SPACE)
    assert entry["mountpoint"] == "/tmp/ovt/m 2"
    assert entry["fstype"] == "overlay" and entry["dev"] == "0:39"
    assert entry["lower"] == ["/tmp/ovt/l 1"]
    assert entry["upper"] == "/tmp/ovt/u,x y"
    assert entry["work"] == "/tmp/ovt/w:z"
    assert "uuid=on" in entry["options"]


def test_mountinfo_escaped_colon_separates_layers_correctly():
    assert ov.parse_mountinfo_line(LINE_COLON)["lower"] == ["/tmp/ovt/l:2", "/tmp/ovt/l 1"]


def test_mountinfo_escaped_comma_in_lowerdir():
    assert ov.parse_mountinfo_line(LINE_COMMA)["lower"] == ["/tmp/ovt/l,3"]


def test_mountinfo_data_layers_and_lowerdir_plus():
    assert ov.parse_mountinfo_line(LINE_DATA)["lower"] == ["/a", "/b"]
    entry = ov.parse_mountinfo_line(LINE_PLUS)
    assert entry["lower"] == ["/a", "/b,c", "/d"] and entry["upper"] is None


def test_mountinfo_optional_fields_and_other_filesystems():
    mounts = ov.parse_mountinfo("\n".join([LINE_EXT4, LINE_TMPFS, LINE_COLON, ""]))
    assert [m["fstype"] for m in mounts] == ["ext4", "tmpfs", "overlay"]
    assert mounts[1]["source"] == "tmpfs" and "lower" not in mounts[1]


def test_mount_at_picks_topmost_and_beneath():
    a = ov.parse_mountinfo_line(LINE_COLON)
    b = ov.parse_mountinfo_line(LINE_COMMA)
    assert ov.mount_at([a, b], "/tmp/ovt/m") is b
    assert ov.mount_at([a, b], "/tmp/ovt") is None
    assert ov.mounts_beneath([a], "/tmp") == ["/tmp/ovt/m"]
    assert ov.mounts_beneath([a], "/tmp/ovt/m") == []


def seq_escape(value):
    """What the kernel's seq_show_option() prints for an option value."""
    return "".join("\\%03o" % ord(c) if c in ",= \t\n\\" else c for c in value)


@pytest.mark.parametrize("path", ["/x/l 1", "/x/l:2", "/x/l,3", "/x/back\\slash", "/x/a=b", "/x/t\tab"])
def test_escape_roundtrip(path):
    """What we pass to mount(2) is what we read back from mountinfo."""
    raw = {"lowerdir": ov.escape_option(path) + ":" + ov.escape_option("/y"),
           "upperdir": ov.escape_option(path + "u"), "workdir": "/w"}
    shown = "rw," + ",".join("%s=%s" % (k, seq_escape(v)) for k, v in raw.items())
    parsed = ov.parse_super_options(shown)
    assert parsed["lower"] == [path, "/y"]
    assert parsed["upper"] == path + "u" and parsed["work"] == "/w"


def test_is_within():
    assert ov.is_within("/a/b", "/a") and ov.is_within("/a", "/a")
    assert not ov.is_within("/ab", "/a") and ov.is_within("/x", "/")


def test_record_path_escapes():
    assert ov.record_path("/run/handbuilt", "/var/lib/x/merged") == \
        "/run/handbuilt/overlay/var-lib-x-merged"
    assert ov.record_path("/s", "/a-b/c d") == "/s/overlay/a%2db-c%20d"
    assert len(os.path.basename(ov.record_path("/s", "/" + "x" * 500))) < 255


# --- validation ---------------------------------------------------------------------
@pytest.fixture
def layers(tmp_path):
    lower = tmp_path / "lower"
    lower.mkdir()
    return tmp_path, str(lower)


def make(tmp, lower_dir, **kw):
    args = dict(path=str(tmp / "c/merged"), lower=[lower_dir], upper=str(tmp / "c/upper"),
                work=str(tmp / "c/work"), state_dir=str(tmp / "state"))
    args.update(kw)
    return ov.OverlayMount(**args)


BAD = [
    (dict(path="relative/merged"), "path", "absolute"),
    (dict(upper="upper"), "upper", "absolute"),
    (dict(path="/"), "path", "system directory"),
    (dict(path="/usr"), "path", "system directory"),
    (dict(path="/etc/"), "path", "system directory"),
    (dict(path="/var/lib/../lib"), "path", ".."),
    (dict(upper="/tmp"), "upper", "system directory"),
    (dict(work="{tmp}/c/upper/work"), "work", "inside upper"),
    (dict(upper="{tmp}/c/work/upper"), "upper", "inside work"),
    (dict(work="{tmp}/c/upper"), "work", "must differ"),
    (dict(lower=["{tmp}/missing"]), "lower", "does not exist"),
    (dict(lower=["{tmp}"]), "lower", "contains"),
    (dict(lower=["{lower}", "{lower}"]), "lower", "twice"),
    (dict(lower=[]), "lower", "at least one"),
    (dict(upper=None), "upper", "required"),
    (dict(upper="{tmp}/c/merged/upper"), "upper", "contain one another"),
    (dict(path="{lower}/merged"), "lower", "contains path"),
    (dict(path="/tmp/x\ny"), "path", "control characters"),
    (dict(state="bogus"), "state", "mounted"),
]


@pytest.mark.parametrize("kw,param,why", BAD)
def test_bad_input(layers, kw, param, why):
    tmp, lower = layers
    kw = {k: ([x.format(tmp=tmp, lower=lower) for x in v] if isinstance(v, list)
              else v.format(tmp=tmp, lower=lower) if isinstance(v, str) else v)
          for k, v in kw.items()}
    with pytest.raises(InvalidInput) as err:
        make(tmp, lower, **kw)
    assert err.value.param == param, err.value
    assert why in str(err.value)
    assert sorted(os.listdir(tmp)) == ["lower"]  # nothing was created


def test_upper_and_work_on_different_filesystems(layers):
    tmp, lower = layers
    if os.stat("/dev/shm").st_dev == os.stat(str(tmp)).st_dev:
        pytest.skip("/dev/shm and the tmp dir are on the same filesystem here")
    with pytest.raises(InvalidInput) as err:
        make(tmp, lower, work="/dev/shm/hb-unit-work")
    assert err.value.param == "work" and "different filesystems" in str(err.value)


def test_symlinked_system_dir_is_refused(layers):
    tmp, lower = layers
    os.symlink("/etc", str(tmp / "etc-link"))
    with pytest.raises(InvalidInput) as err:
        make(tmp, lower, path=str(tmp / "etc-link"))
    assert "resolves to the system directory /etc" in str(err.value)


def test_missing_lower_is_a_warning_in_check_mode(layers):
    tmp, lower = layers
    res = make(tmp, lower, lower=[str(tmp / "later")], check_mode=True)
    assert any("does not exist" in w for w in res.warnings)


# --- plans ------------------------------------------------------------------------
def fake_mount(path, lower, upper, work, dev="0:99"):
    return {"id": 1, "parent": 0, "dev": dev, "root": "/", "mountpoint": path,
            "mount_options": "rw", "fstype": "overlay", "source": "overlay", "super_options": "",
            "lower": lower, "upper": upper, "work": work, "options": []}


def current(mount=None, recorded=True, created=()):
    return {"mount": mount, "mounts": [mount] if mount else [], "recorded": recorded,
            "created": list(created)}


def test_plan_fresh_mount_creates_dirs_and_mounts(layers):
    tmp, lower = layers
    res = make(tmp, lower)
    ops = res.plan(current(recorded=False))
    cmds = [op.command for op in ops]
    assert cmds[:3] == ["mkdir -p %s/c/upper" % tmp, "mkdir -p %s/c/work" % tmp,
                        "mkdir -p %s/c/merged" % tmp]
    assert cmds[3] == ("mount -t overlay overlay -o lowerdir=%s,upperdir=%s/c/upper,workdir=%s/c/work "
                       "%s/c/merged" % (lower, tmp, tmp, tmp))
    after = res.predict(res.view(current(recorded=False)))
    assert after["state"] == "mounted" and after["lower"] == [lower]


def test_plan_same_layers_is_empty(layers):
    tmp, lower = layers
    res = make(tmp, lower)
    m = fake_mount(res.path, [lower], res.upper, res.work)
    assert res.plan(current(m)) == []


def test_plan_same_layers_unrecorded_adopts(layers):
    tmp, lower = layers
    res = make(tmp, lower)
    m = fake_mount(res.path, [lower], res.upper, res.work)
    ops = res.plan(current(m, recorded=False))
    assert [op.command for op in ops] == ["touch %s" % res.record]
    assert res.adopted


def test_plan_other_layers_remounts(layers):
    tmp, lower = layers
    res = make(tmp, lower)
    m = fake_mount(res.path, ["/old"], res.upper, res.work)
    cmds = [op.command for op in res.plan(current(m))]
    assert cmds[0] == "umount %s" % res.path and cmds[-1].startswith("mount -t overlay")


def test_plan_refuses_non_overlay_mount(layers):
    tmp, lower = layers
    res = make(tmp, lower)
    m = dict(fake_mount(res.path, [], None, None), fstype="tmpfs", source="tmpfs")
    with pytest.raises(PlanError, match="not an overlay"):
        res.plan(current(m))


def test_plan_unmount_unrecorded_needs_force(layers):
    tmp, lower = layers
    m = fake_mount(str(tmp / "c/merged"), [lower], "/u", "/w")
    res = ov.OverlayMount(str(tmp / "c/merged"), state="unmounted", state_dir=str(tmp / "s"))
    with pytest.raises(PlanError, match="force"):
        res.plan(current(m, recorded=False))
    res = ov.OverlayMount(str(tmp / "c/merged"), state="unmounted", state_dir=str(tmp / "s"),
                          force=True)
    assert [op.command for op in res.plan(current(m, recorded=False))] == \
        ["umount %s/c/merged" % tmp]


def test_plan_absent_removes_only_created(layers):
    tmp, lower = layers
    for d in ("c", "c/upper", "c/work", "c/merged", "keep"):
        (tmp / d).mkdir()
    created = [("parent", str(tmp / "c")), ("upper", str(tmp / "c/upper")),
               ("work", str(tmp / "c/work")), ("path", str(tmp / "c/merged"))]
    res = ov.OverlayMount(str(tmp / "c/merged"), upper=str(tmp / "keep"), work=str(tmp / "c/work"),
                          state="absent", state_dir=str(tmp / "s"))
    cmds = [op.command for op in res.plan(current(None, True, created))]
    assert cmds == ["rmdir %s/c/merged" % tmp, "rm -rf %s/c/work" % tmp, "rm -rf %s/c/upper" % tmp,
                    "rmdir %s/c" % tmp, "rm -f %s" % res.record]
    assert any("keep was not created" in w for w in res.warnings)


def test_plan_absent_nothing_there_is_empty(layers):
    tmp, dummy = layers
    res = ov.OverlayMount(str(tmp / "nothing"), state="absent", state_dir=str(tmp / "s"))
    assert res.plan(current(None, False)) == []
    assert res.view(current(None, False)) == {"state": "absent", "path": str(tmp / "nothing")}
