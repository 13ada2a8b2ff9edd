# -*- coding: utf-8 -*-
"""image: source parsing, validation, digests and plans (built only under a tmp dir)."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.handbuilt.containers.plugins.module_utils import image as im
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import PlanError
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput

HEX = hashlib.sha256(b"x").hexdigest()


def test_parse_checksum():
    assert im.parse_checksum("sha256:" + HEX.upper()) == ("sha256", HEX)
    for bad in ("", HEX, "md5:" + HEX[:32], "sha256:abc", "sha256:" + "g" * 64, None):
        with pytest.raises(InvalidInput) as err:
            im.parse_checksum(bad)
        assert err.value.param == "checksum"


def test_nameservers_drop_loopback_and_duplicates():
    text = "# x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nnameserver 10.0.0.2\n" \
           "nameserver fd00::1\nsearch lan\n"
    assert im.nameservers_from(text) == ["10.0.0.2", "fd00::1"]


def test_apt_mirror_deb822_and_one_line():
    deb822 = ("Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
              "URIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
              "Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n"
              "Suites: bookworm-security\nComponents: main\n")
    assert im.apt_mirror({"/etc/apt/sources.list.d/debian.sources": deb822}) == \
        "http://deb.debian.org/debian"
    one = ("deb http://security.debian.org/debian-security bookworm-security main\n"
           "deb [arch=amd64] http://mirror.example/debian/ bookworm main\n")
    assert im.apt_mirror({"/etc/apt/sources.list": one}) == "http://mirror.example/debian"
    assert im.apt_mirror({"/etc/apt/sources.list": "# nothing\n"}) is None
    # A third-party repository sorting first is not Debian's archive (no main component).
    docker = "deb [arch=amd64] https://download.docker.com/linux/debian bookworm stable\n"
    assert im.apt_mirror({"/etc/apt/sources.list.d/a-docker.list": docker,
                          "/etc/apt/sources.list.d/debian.sources": deb822}) == \
        "http://deb.debian.org/debian"


@pytest.mark.parametrize("kw,param", [
    (dict(name="a/b"), "name"), (dict(name=".."), "name"), (dict(name=".hidden"), "name"),
    (dict(name="x" * 65), "name"), (dict(source="docker"), "source"),
    (dict(source="tarball"), "tarball"), (dict(source="tarball", tarball="/x.tar"), "checksum"),
    (dict(source="tarball", tarball="x.tar", checksum="sha256:" + HEX), "tarball"),
    (dict(source="debootstrap", suite="Bookworm;rm"), "suite"),
    (dict(source="debootstrap", include=["python3", "bad pkg"]), "include"),
    (dict(source="debootstrap", mirror="deb.debian.org"), "mirror"),
    (dict(busybox="/nonexistent/busybox"), "busybox"),
    (dict(nameservers=["8.8.8.8", "evil\nline"]), "nameservers"),
    (dict(images_dir="/var"), "images_dir"), (dict(images_dir="images"), "images_dir"),
])
def test_bad_input(tmp_path, kw, param):
    args = dict(name="img", images_dir=str(tmp_path / "images"))
    args.update(kw)
    with pytest.raises(InvalidInput) as err:
        im.Image(**args)
    assert err.value.param == param, err.value
    assert not os.path.exists(str(tmp_path / "images"))


def test_digest_covers_the_source(tmp_path):
    d = str(tmp_path)
    a = im.Image("bb", images_dir=d, nameservers=["10.0.0.2"])
    b = im.Image("bb", images_dir=d, nameservers=["10.0.0.2"])
    c = im.Image("bb", images_dir=d, nameservers=["10.0.0.3"])
    assert a.version == b.version != c.version and a.version.startswith("busybox-")
    t1 = im.Image("t", source="tarball", tarball="https://x.invalid/a.tgz", checksum="sha256:" + HEX,
                  images_dir=d)
    t2 = im.Image("t", source="tarball", tarball="/elsewhere/a.tgz", checksum="SHA256:" + HEX.upper(),
                  images_dir=d)
    assert t1.version == t2.version  # the content is what counts, not where it comes from
    d1 = im.Image("deb", source="debootstrap", include=["python3", "iproute2"], images_dir=d,
                  mirror="http://m.example/debian")
    d2 = im.Image("deb", source="debootstrap", include=["iproute2", "python3"], images_dir=d,
                  mirror="http://m.example/debian")
    assert d1.version == d2.version
    assert d1._debootstrap_argv("/r") == ["debootstrap", "--variant=minbase",
                                          "--include=iproute2,python3", "bookworm", "/r",
                                          "http://m.example/debian"]


def test_busybox_build_is_atomic_and_idempotent(tmp_path):
    d = str(tmp_path / "images")
    img = im.Image("bb", images_dir=d, nameservers=["10.0.0.2"])
    check = img.converge(check_mode=True)
    assert check["changed"] and not os.path.exists(d)
    assert check["diff"]["after"]["current"] == img.version
    first = im.Image("bb", images_dir=d, nameservers=["10.0.0.2"]).converge(check_mode=False)

    def stable(cmds):  # the manifest carries the build time
        return [c for c in cmds if not c.startswith("echo ")]
    assert first["changed"] and stable(first["commands"]) == stable(check["commands"])
    rootfs = first["rootfs"]
    assert rootfs == os.path.join(d, "bb", img.version, "rootfs")
    assert os.readlink(os.path.join(rootfs, "bin/sh")) == "/bin/busybox"
    with open(os.path.join(rootfs, "etc/resolv.conf")) as fh:
        assert fh.read() == "nameserver 10.0.0.2\n"
    assert sorted(os.listdir(os.path.join(d, "bb"))) == sorted(["current", img.version])
    again = im.Image("bb", images_dir=d, nameservers=["10.0.0.2"]).converge(check_mode=False)
    assert not again["changed"] and again["commands"] == []
    # A changed source: a new version beside the old one, current switched.
    new = im.Image("bb", images_dir=d, nameservers=["10.0.0.9"])
    res = new.converge(check_mode=False)
    assert res["changed"] and res["image"]["versions"] == sorted([img.version, new.version])
    assert os.readlink(os.path.join(d, "bb", "current")) == new.version
    assert os.path.isdir(rootfs)  # the old version stays for overlays that use it
    # Back to the first source: only current moves.
    back = im.Image("bb", images_dir=d, nameservers=["10.0.0.2"]).converge(check_mode=False)
    assert back["commands"] == ["ln -sfn %s %s/bb/current.new && mv -T %s/bb/current.new %s/bb/current"
                                % (img.version, d, d, d)]
    pruned = im.Image("bb", images_dir=d, nameservers=["10.0.0.2"], prune=True).converge(False)
    assert pruned["commands"] == ["rm -rf %s" % os.path.join(d, "bb", new.version)]
    gone = im.Image("bb", images_dir=d, state="absent").converge(check_mode=False)
    assert gone["changed"] and not os.path.exists(os.path.join(d, "bb"))


def test_foreign_directory_is_refused(tmp_path):
    d = tmp_path / "images"
    (d / "mine" / "stuff").mkdir(parents=True)
    with pytest.raises(PlanError, match="not a handbuilt.containers image"):
        im.Image("mine", images_dir=str(d), nameservers=[]).converge(check_mode=True)
    with pytest.raises(PlanError, match="force"):
        im.Image("mine", images_dir=str(d), state="absent").converge(check_mode=False)
    assert (d / "mine" / "stuff").is_dir()


def test_stale_build_dir_is_cleaned(tmp_path):
    d = tmp_path / "images"
    img = im.Image("bb", images_dir=str(d), nameservers=[])
    os.makedirs(img.build_dir + "-old/rootfs")
    res = img.converge(check_mode=False)
    assert res["commands"][0] == "rm -rf %s-old" % img.build_dir
    assert sorted(os.listdir(str(d / "bb"))) == sorted(["current", img.version])


def test_a_failed_command_says_which_with_the_end_of_its_output():
    assert im.run(["printf", "applets"], 10) == "applets"
    with pytest.raises(PlanError) as exc:
        im.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
    assert str(exc.value) == "sh -c 'echo out; echo err >&2; exit 3' failed (3): out\nerr"
