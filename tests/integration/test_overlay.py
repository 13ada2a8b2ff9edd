# -*- coding: utf-8 -*-
"""overlay_mount on the real kernel, inside the sandbox's private mount namespace."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from conftest import sh

M = "handbuilt.containers.overlay_mount"


def mounts_under(path):
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                out.append((mp, line.split(" - ")[1].split()[0], line))
    return out


@pytest.fixture
def tmp(tmp_path):
    """A tmp dir whose mounts must all be gone at the end (they are cleaned up either way)."""
    root = str(tmp_path)
    yield tmp_path
    left = mounts_under(root)
    for mp, dummy, dummy in reversed(left):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    assert not left, "mounts leaked: %s" % [m[0] for m in left]


def layer(path, **files):
    os.makedirs(path, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(path, name), "w") as fh:
            fh.write(content)
    return str(path)


def task(name, **args):
    return {"name": name, M: args}


def spec(tmp, lower, c="c", **kw):
    args = dict(path="%s/%s/merged" % (tmp, c), lower=lower, upper="%s/%s/upper" % (tmp, c),
                work="%s/%s/work" % (tmp, c))
    args.update(kw)
    return args


def read(path):
    with open(path) as fh:
        return fh.read()


def test_mount_write_rerun_unmount_absent(ansible, tmp):
    base = layer(tmp / "base", **{"hello": "from base\n", "shadowed": "base\n"})
    app = layer(tmp / "app", shadowed="app\n")
    args = spec(tmp, [app, base])
    first = ansible.tasks([task("mount", **args)], diff=True)
    assert first.rc == 0 and first.changed == 1, first
    res = first.result("mount")
    assert res["commands"][-1] == (
        "mount -t overlay overlay -o lowerdir=%s:%s,upperdir=%s,workdir=%s %s"
        % (app, base, args["upper"], args["work"], args["path"]))
    assert res["overlay"]["lower"] == [app, base]
    assert res["diff"]["before"] == {"state": "absent", "path": args["path"]}
    # The kernel agrees, read independently (findmnt) of the module.
    fs = sh("findmnt", "-n", "-o", "FSTYPE,OPTIONS", args["path"])
    assert fs.startswith("overlay") and "lowerdir=%s:%s" % (app, base) in fs
    merged = args["path"]
    assert read(merged + "/hello") == "from base\n" and read(merged + "/shadowed") == "app\n"
    with open(merged + "/new", "w") as fh:
        fh.write("written in merged\n")
    os.unlink(merged + "/hello")
    assert read(args["upper"] + "/new") == "written in merged\n"
    assert read(base + "/hello") == "from base\n" and sorted(os.listdir(base)) == ["hello", "shadowed"]
    assert os.path.exists(args["upper"] + "/hello")  # the whiteout

    steps = ansible.tasks([task("again", **args), task("unmounted", path=merged, state="unmounted"),
                           task("unmounted again", path=merged, state="unmounted")])
    assert steps.rc == 0, steps
    assert steps.result("again")["changed"] is False and steps.result("again")["commands"] == []
    assert steps.result("unmounted")["commands"] == ["umount %s" % merged]
    assert steps.result("unmounted again")["changed"] is False
    assert not mounts_under(merged)
    assert read(args["upper"] + "/new") == "written in merged\n"  # unmounted keeps the upper

    gone = ansible.tasks([task("absent", path=merged, state="absent"),
                          task("absent again", path=merged, state="absent")])
    assert gone.rc == 0 and gone.changed == 1, gone
    assert sorted(os.listdir(tmp)) == ["app", "base"]  # c/, its upper, work, merged: all created
    assert os.listdir("/run/handbuilt") == []


def test_absent_keeps_preexisting_dirs(ansible, tmp):
    base = layer(tmp / "base", f="x")
    upper = layer(tmp / "c" / "upper", mine="kept\n")  # exists before: not ours
    args = spec(tmp, [base])
    gone = ansible.tasks([task("mount", **args),
                          task("absent", path=args["path"], upper=upper, work=args["work"],
                               state="absent")])
    assert gone.rc == 0 and gone.changed == 2, gone
    assert gone.result("absent")["commands"] == [
        "umount %s" % args["path"], "rmdir %s" % args["path"], "rm -rf %s" % args["work"],
        "rm -f /run/handbuilt/overlay/%s" % os.path.basename(
            gone.result("absent")["commands"][-1].split()[-1])]
    assert sorted(os.listdir(tmp / "c")) == ["upper"] and read(upper + "/mine") == "kept\n"
    assert any("not created by handbuilt.containers" in w
               for w in gone.result("absent").get("warnings", []))


def test_changed_layers_remount(ansible, tmp):
    base = layer(tmp / "base", f="base\n")
    app = layer(tmp / "app", f="app\n")
    assert ansible.tasks([task("mount", **spec(tmp, [base]))]).rc == 0
    with open(str(tmp / "c/merged/w"), "w") as fh:
        fh.write("kept across the remount\n")
    res = ansible.tasks([task("mount", **spec(tmp, [app, base])),
                         task("again", **spec(tmp, [app, base]))])
    assert res.rc == 0 and res.changed == 1, res
    cmds = res.result("mount")["commands"]
    assert cmds[0] == "umount %s/c/merged" % tmp and cmds[1].startswith("mount -t overlay")
    assert res.result("again")["commands"] == []
    assert read(str(tmp / "c/merged/f")) == "app\n"
    assert read(str(tmp / "c/merged/w")) == "kept across the remount\n"
    assert len(mounts_under(str(tmp / "c/merged"))) == 1  # replaced, not stacked
    assert ansible.tasks([task("absent", path=str(tmp / "c/merged"), state="absent")]).rc == 0


def wait_for_cwd(proc, path):
    for dummy in range(100):
        try:
            if os.readlink("/proc/%d/cwd" % proc.pid).startswith(path):
                return
        except OSError:
            pass
        time.sleep(0.02)


def test_busy_mount_with_changed_layers_is_a_clear_error(ansible, tmp):
    base = layer(tmp / "base", f="base\n")
    app = layer(tmp / "app", f="app\n")
    args = spec(tmp, [base])
    assert ansible.tasks([task("mount", **args)]).rc == 0
    before = mounts_under(args["path"])
    # 1. A process with its working directory inside (this mount namespace).
    proc = subprocess.Popen(["sleep", "60"], cwd=args["path"])
    try:
        wait_for_cwd(proc, args["path"])
        res = ansible.tasks([dict(task("mount", **spec(tmp, [app, base])), ignore_errors=True),
                             dict(task("check", **spec(tmp, [app, base])), check_mode=True)])
        assert res.rc != 0 and res.failed == 1, res
        msg = res.result("mount")["msg"]
        assert "in use" in msg and "pid %d (sleep)" % proc.pid in msg, msg
        assert "in use" in res.result("check")["msg"], res
    finally:
        proc.kill()
        proc.wait()
    assert mounts_under(args["path"]) == before  # nothing changed
    # 2. A container-like process holding the mount in its own mount namespace.
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
    try:
        for dummy in range(100):
            if os.readlink("/proc/%d/ns/mnt" % proc.pid) != os.readlink("/proc/self/ns/mnt"):
                break
            time.sleep(0.02)
        res = ansible.tasks([dict(task("mounted", **spec(tmp, [app, base])), ignore_errors=True),
                             task("unmounted", path=args["path"], state="unmounted")])
        assert res.rc != 0, res
        for name in ("mounted", "unmounted"):
            msg = res.result(name)["msg"]
            assert "in use" in msg and "mount namespace" in msg and str(proc.pid) in msg, msg
    finally:
        proc.kill()
        proc.wait()
    assert mounts_under(args["path"]) == before
    # Once nothing uses it, the remount goes through.
    res = ansible.tasks([task("mount", **spec(tmp, [app, base])),
                         task("absent", path=args["path"], state="absent")])
    assert res.rc == 0 and res.changed == 2, res


def test_check_mode_changes_nothing(ansible, tmp):
    base = layer(tmp / "base", f="base\n")
    app = layer(tmp / "app", f="app\n")
    args = spec(tmp, [base])
    check = ansible.tasks([task("mount", **args)], check=True, diff=True)
    assert check.rc == 0 and check.changed == 1, check
    assert sorted(os.listdir(tmp)) == ["app", "base"] and os.listdir("/run/handbuilt") == []
    real = ansible.tasks([task("mount", **args)], diff=True)
    assert real.result("mount")["commands"] == check.result("mount")["commands"]
    predicted, got = check.result("mount")["diff"]["after"], real.result("mount")["diff"]["after"]
    assert predicted == got
    state = (mounts_under(args["path"]), sorted(os.listdir(tmp / "c")),
             sorted(os.listdir("/run/handbuilt/overlay")))
    res = ansible.tasks([task("m", **spec(tmp, [app, base])),
                         task("u", path=args["path"], state="unmounted"),
                         task("a", path=args["path"], state="absent")], check=True, diff=True)
    assert res.rc == 0 and res.changed == 3, res
    assert res.result("m")["commands"][0] == "umount %s" % args["path"]
    assert (mounts_under(args["path"]), sorted(os.listdir(tmp / "c")),
            sorted(os.listdir("/run/handbuilt/overlay"))) == state
    check_absent = res.result("a")
    real = ansible.tasks([task("a", path=args["path"], state="absent"),
                          dict(task("again", path=args["path"], state="absent"), check_mode=True)],
                         diff=True)
    assert real.result("a")["commands"] == check_absent["commands"]
    assert real.result("a")["diff"]["after"] == check_absent["diff"]["after"]
    assert real.result("again")["changed"] is False


def test_hand_made_mount_with_odd_characters(ansible, tmp):
    """Spaces, commas and colons survive mountinfo's escaping; hand-made mounts are adopted."""
    base = layer(tmp / "base, v1", f="base\n")
    app = layer(tmp / "app:2", f="app\n")
    upper, work, merged = (str(tmp / "c d" / n) for n in ("up per", "wo,rk", "mer:ged"))
    for d in (upper, work, merged):
        os.makedirs(d)

    def esc(p):
        return p.replace(",", "\\,").replace(":", "\\:")

    sh("mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s:%s,upperdir=%s,workdir=%s"
       % (esc(app), esc(base), esc(upper), esc(work)), merged)
    args = dict(path=merged, lower=[app, base], upper=upper, work=work)
    res = ansible.tasks([task("mount", **args), task("again", **args),
                         task("a", path=merged, state="absent")])
    assert res.rc == 0 and res.changed == 2, res
    result = res.result("mount")
    assert result["adopted"] and result["commands"][0].startswith("touch ")
    assert result["overlay"]["lower"] == [app, base] and result["overlay"]["upper"] == upper
    assert res.result("again")["changed"] is False
    assert not mounts_under(merged)
    assert all(os.path.isdir(d) for d in (upper, work, merged))  # none of them was ours
    # A hand-made mount the collection has no record of is only unmounted with force.
    sh("mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s"
       % (esc(base), esc(upper), esc(work)), merged)
    res = ansible.tasks([dict(task("refused", path=merged, state="unmounted"), ignore_errors=True),
                         task("forced", path=merged, state="unmounted", force=True)])
    assert "force" in res.result("refused")["msg"], res
    assert res.result("forced")["changed"] and not mounts_under(merged), res
    # The module mounts such paths itself too, idempotently.
    res = ansible.tasks([task("mount", **args), task("again", **args),
                         task("a", path=merged, state="absent")])
    assert res.rc == 0 and res.changed == 2 and res.result("again")["changed"] is False, res


def test_refuses_to_mount_over_another_filesystem(ansible, tmp):
    base = layer(tmp / "base", f="x")
    args = spec(tmp, [base])
    os.makedirs(args["path"])
    sh("mount", "-t", "tmpfs", "tmpfs", args["path"])
    try:
        res = ansible.tasks([task("mount", **args)])
        assert res.rc != 0 and "not an overlay" in res.result("mount")["msg"], res
        assert not os.path.exists(args["upper"])
    finally:
        sh("umount", args["path"])


def test_bad_input_fails_and_changes_nothing(ansible, tmp):
    base = layer(tmp / "base", f="x")
    other = "/dev/shm" if os.stat("/dev/shm").st_dev != os.stat(str(tmp)).st_dev else None
    t = str(tmp)
    cases = {
        "missing lower": spec(t, [t + "/nope"]),
        "relative path": spec(t, [base], path="c/merged"),
        "relative lower": spec(t, ["base"]),
        "path is /": spec(t, [base], path="/"),
        "path is /usr": spec(t, [base], path="/usr"),
        "path is /etc": spec(t, [base], path="/etc"),
        "path is /run": spec(t, [base], path="/run"),
        "upper is /var": spec(t, [base], upper="/var"),
        "work inside upper": spec(t, [base], work=t + "/c/upper/work"),
        "upper inside work": spec(t, [base], upper=t + "/c/work/upper"),
        "upper equals work": spec(t, [base], work=t + "/c/upper"),
        "lower contains upper": spec(t, [t]),
        "lower contains merged": spec(t, [base], path=base + "/merged"),
        "lower listed twice": spec(t, [base, base]),
        "no upper": {k: v for k, v in spec(t, [base]).items() if k != "upper"},
        "dotdot": spec(t, [base], path=t + "/../x/merged"),
        "lower is a file": spec(t, [base + "/f"]),
    }
    if other:
        cases["upper and work on different filesystems"] = spec(t, [base], work=other + "/hb-work")
    tasks = [dict(task(name, **args), ignore_errors=True) for name, args in cases.items()]
    res = ansible.tasks(tasks)
    assert len(res.tasks) == len(cases), res
    for name in cases:
        result = res.result(name)
        assert result["failed"] and result.get("msg"), (name, result)
        assert "Traceback" not in result["msg"], (name, result)
    assert res.changed == 0
    assert sorted(os.listdir(tmp)) == ["base"] and os.listdir("/run/handbuilt") == []
    assert not mounts_under(t) and (not other or not os.path.exists(other + "/hb-work"))
    msgs = {name: res.result(name)["msg"] for name in cases}
    assert "does not exist" in msgs["missing lower"]
    assert "system directory" in msgs["path is /"]
    assert "inside upper" in msgs["work inside upper"]
    if other:
        assert "different filesystems" in msgs["upper and work on different filesystems"]
