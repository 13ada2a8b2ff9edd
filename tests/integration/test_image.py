# -*- coding: utf-8 -*-
"""image module and rootfs role on the real host, images under a pytest tmp dir only."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile

import pytest
from conftest import sh

IMG = "handbuilt.containers.image"
OVL = "handbuilt.containers.overlay_mount"


@pytest.fixture
def tmp(tmp_path):
    yield tmp_path
    left = [line.split()[4] for line in open("/proc/self/mountinfo")
            if line.split()[4].startswith(str(tmp_path))]
    for mp in reversed(left):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    assert not left, "mounts leaked: %s" % left


def image(task_name, tmp, image="busybox", **kw):
    return {"name": task_name, IMG: dict(kw, name=image, images_dir=str(tmp / "images"))}


def test_busybox_image_build_rebuild_and_use(ansible, tmp):
    res = ansible.tasks([image("build", tmp, nameservers=["10.0.0.2"]),
                         image("again", tmp, nameservers=["10.0.0.2"])])
    assert res.rc == 0 and res.changed == 1, res
    built = res.result("build")
    rootfs = built["rootfs"]
    version = built["image"]["version"]
    assert rootfs == str(tmp / "images" / "busybox" / version / "rootfs")
    assert built["image"]["current"] == str(tmp / "images/busybox/current/rootfs")
    assert res.result("again")["changed"] is False and res.result("again")["commands"] == []
    assert res.result("again")["rootfs"] == rootfs
    # The image works: a shell runs inside it (chroot), with its own /etc.
    out = sh("chroot", rootfs, "/bin/sh", "-c", "echo hi from $(cat /etc/hostname); ls /bin | wc -l")
    assert out.splitlines()[0] == "hi from busybox" and int(out.splitlines()[1]) > 50
    for f, want in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh"), ("etc/group", "root:x:0:"),
                    ("etc/resolv.conf", "nameserver 10.0.0.2")):
        assert want in open(os.path.join(rootfs, f)).read()
    for d in ("proc", "sys", "dev", "tmp", "run", "etc", "root"):
        assert os.path.isdir(os.path.join(rootfs, d))
    if os.path.exists("/usr/bin/tini-static"):
        assert built["image"]["init"] == "/sbin/tini" and os.access(rootfs + "/sbin/tini", os.X_OK)

    # A container's overlay on it; then the source changes while it is mounted.
    merged = str(tmp / "web/merged")
    ovl = {"name": "overlay", OVL: dict(path=merged, lower=[str(tmp / "images/busybox/current/rootfs")],
                                        upper=str(tmp / "web/upper"), work=str(tmp / "web/work"))}
    res = ansible.tasks([ovl, image("new source", tmp, nameservers=["10.0.0.3"], prune=True)])
    assert res.rc == 0, res
    assert res.result("overlay")["overlay"]["lower"] == [rootfs]  # the resolved, versioned dir
    new = res.result("new source")["image"]
    assert new["version"] != version and new["versions"] == sorted([version, new["version"]])
    assert any("is kept" in w for w in res.result("new source").get("warnings", []))
    assert os.path.isdir(rootfs) and open(merged + "/etc/resolv.conf").read() == "nameserver 10.0.0.2\n"
    res = ansible.tasks([dict(image("absent while used", tmp, state="absent"), ignore_errors=True),
                         {"name": "unmount", OVL: dict(path=merged, state="absent")},
                         image("prune", tmp, nameservers=["10.0.0.3"], prune=True),
                         image("absent", tmp, state="absent")])
    assert "in use" in res.result("absent while used")["msg"], res
    assert res.result("prune")["commands"] == ["rm -rf %s" % os.path.dirname(rootfs)]
    assert res.result("absent")["changed"] and res.result("absent")["image"] is None
    assert os.listdir(str(tmp / "images")) == [] and not os.path.exists(str(tmp / "web"))


def make_tarball(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("etc/os-release", b"NAME=tiny\n"), ("bin/hello", b"#!/bin/sh\necho hi\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
        tar.addfile(link)
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def test_tarball_image_with_good_and_bad_checksum(ansible, tmp):
    tarball = str(tmp / "tiny.tar.gz")
    digest = make_tarball(tarball)
    bad = "sha256:" + "0" * 64
    res = ansible.tasks([
        dict(image("bad", tmp, image="tiny", source="tarball", tarball=tarball, checksum=bad),
             ignore_errors=True),
        image("good", tmp, image="tiny", source="tarball", tarball=tarball, checksum="sha256:" + digest),
        image("again", tmp, image="tiny", source="tarball", tarball=tarball, checksum="sha256:" + digest),
        dict(image("bad over good", tmp, image="tiny", source="tarball", tarball=tarball, checksum=bad),
             ignore_errors=True),
    ])
    msg = res.result("bad")["msg"]
    assert res.result("bad")["failed"] and "checksum" in msg and digest in msg, res
    good = res.result("good")
    assert good["changed"] and good["image"]["source"] == "tarball", res
    rootfs = good["rootfs"]
    assert open(rootfs + "/etc/os-release").read() == "NAME=tiny\n"
    assert os.readlink(rootfs + "/bin/sh") == "/bin/busybox"
    assert res.result("again")["changed"] is False
    assert res.result("bad over good")["failed"]
    # Failed builds leave nothing behind; the good image is untouched and still current.
    assert sorted(os.listdir(str(tmp / "images/tiny"))) == sorted(["current", good["image"]["version"]])
    assert os.readlink(str(tmp / "images/tiny/current")) == good["image"]["version"]
    check = ansible.tasks([image("gone", tmp, image="tiny", state="absent")], check=True)
    assert check.changed == 1 and os.path.isdir(rootfs)
    assert ansible.tasks([image("gone", tmp, image="tiny", state="absent")]).changed == 1
    assert os.listdir(str(tmp / "images")) == []


def test_check_mode_builds_nothing(ansible, tmp):
    res = ansible.tasks([image("bb", tmp)], check=True, diff=True)
    assert res.rc == 0 and res.changed == 1, res
    assert res.result("bb")["diff"]["before"] == {"state": "absent", "name": "busybox"}
    assert res.result("bb")["diff"]["after"]["state"] == "present"
    assert not os.path.exists(str(tmp / "images"))


def test_rootfs_role(ansible, tmp):
    tarball = str(tmp / "tiny.tar.gz")
    digest = make_tarball(tarball)
    role = {"name": "rootfs", "ansible.builtin.include_role": {"name": "handbuilt.containers.rootfs"},
            "vars": {"rootfs_data_dir": str(tmp / "data"),
                     "rootfs_images": [{"name": "busybox"},
                                       {"name": "tiny", "source": "tarball", "url": tarball,
                                        "checksum": "sha256:" + digest}]}}
    show = {"name": "show", "ansible.builtin.debug": {"var": "rootfs_paths"}}
    check = ansible.tasks([role, show], check=True)
    assert check.rc == 0, check
    assert not os.path.exists(str(tmp / "data"))
    first = ansible.tasks([role, show])
    assert first.rc == 0 and first.changed == 1, first  # one looped task: both images built
    paths = first.result("show")["rootfs_paths"]
    assert sorted(paths) == ["busybox", "tiny"]
    assert paths["busybox"].startswith(str(tmp / "data/images/busybox/busybox-"))
    assert os.path.isfile(paths["tiny"] + "/etc/os-release")
    again = ansible.tasks([role, show])
    assert again.rc == 0 and again.changed == 0, again
    bad = dict(role, vars=dict(role["vars"], rootfs_images=[{"name": "x", "source": "docker"}]))
    res = ansible.tasks([bad])
    assert res.rc != 0 and "docker" in res.output, res


@pytest.mark.skipif(os.environ.get("HANDBUILT_TEST_DEBOOTSTRAP") != "1",
                    reason="debootstrap downloads ~40 MB from the host's apt mirror and takes ~75 s; "
                           "set HANDBUILT_TEST_DEBOOTSTRAP=1 to run it")
def test_debootstrap_image(ansible, tmp):
    res = ansible.tasks([image("deb", tmp, image="debian", source="debootstrap", suite="bookworm"),
                         image("again", tmp, image="debian", source="debootstrap", suite="bookworm")])
    assert res.rc == 0 and res.changed == 1, res
    rootfs = res.result("deb")["rootfs"]
    assert "bookworm" in open(rootfs + "/etc/os-release").read()
    assert ansible.tasks([image("gone", tmp, image="debian", state="absent")]).changed == 1
