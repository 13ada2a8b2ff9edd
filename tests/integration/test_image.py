# -*- coding: utf-8 -*-
"""image module and rootfs role on the real host, images under a pytest tmp dir only."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import threading
import types

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
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    assert not left, "mounts leaked: %s" % left


def image(task_name, tmp, image="busybox", **kw):
    return {"name": task_name, IMG: dict(kw, name=image, images_dir=str(tmp / "images"))}


# Downloads from the test's own HTTP server never go through a proxy.
LOCAL = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


@pytest.fixture
def serve():
    """serve(directory) -> .url (http://127.0.0.1:<port>) and .log [(method, path, status)]:
    a static HTTP server on the sandbox's lo, in a thread of the test; stopped after the test."""
    servers = []

    def start(directory):
        log = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_request(self, code="-", size="-"):
                log.append((self.command, self.path, int(code)))

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return types.SimpleNamespace(url="http://127.0.0.1:%d" % httpd.server_address[1], log=log)

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


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


def test_tarball_image_from_url(ansible, tmp, serve):
    site = tmp / "site"
    site.mkdir()
    digest = make_tarball(str(site / "tiny.tar.gz"))
    web = serve(site)
    url, missing = web.url + "/tiny.tar.gz", web.url + "/missing.tar.gz"
    good = dict(source="tarball", tarball=url, checksum="sha256:" + digest)
    bad = {**good, "checksum": "sha256:" + "0" * 64}

    def task(name, **kw):
        return dict(image(name, tmp, image="tiny", **kw), environment=LOCAL)

    res = ansible.tasks([dict(task("bad", **bad), ignore_errors=True),
                         dict(task("404", **{**good, "tarball": missing}), ignore_errors=True)])
    msg = res.result("bad")["msg"]
    assert res.result("bad")["failed"] and "checksum" in msg and digest in msg and url in msg, res
    msg = res.result("404")["msg"]
    assert res.result("404")["failed"] and "404" in msg and missing in msg, res
    assert [r[1:] for r in web.log] == [("/tiny.tar.gz", 200), ("/missing.tar.gz", 404)]
    # Neither failure left an image (nor a build dir, nor the download) behind.
    left = tmp / "images/tiny"
    assert not left.exists(), os.listdir(str(left))

    web.log.clear()
    res = ansible.tasks([task("good", **good), task("again", **good)])
    assert res.rc == 0 and res.changed == 1, res
    built = res.result("good")
    assert built["image"]["source"] == "tarball" and built["image"]["manifest"]["source"] == {
        "source": "tarball", "checksum": "sha256:" + digest}
    rootfs = built["rootfs"]
    assert open(rootfs + "/etc/os-release").read() == "NAME=tiny\n"
    assert os.readlink(rootfs + "/bin/sh") == "/bin/busybox"
    assert sorted(os.listdir(os.path.dirname(rootfs))) == ["manifest.json", "rootfs"]  # no source.tar
    again = res.result("again")
    assert again["changed"] is False and again["commands"] == [] and again["rootfs"] == rootfs
    assert [r[1:] for r in web.log] == [("/tiny.tar.gz", 200)]  # downloaded once, not again

    assert ansible.tasks([image("gone", tmp, image="tiny", state="absent")]).changed == 1
    assert os.listdir(str(tmp / "images")) == []


# A partial Debian mirror (bookworm minbase, genuine signed Release files and .debs) that
# tests/tools/debian-mirror.sh builds outside the sandbox; served here on 127.0.0.1 only.
MIRROR_CACHE = os.path.join(os.environ.get("HANDBUILT_MIRROR_CACHE")
                            or os.path.expanduser("~/.cache/handbuilt-mirror"), "bookworm")


@pytest.mark.skipif(not os.path.isfile(os.path.join(MIRROR_CACHE, ".complete")),
                    reason="no Debian mirror cache at %s: run tests/tools/debian-mirror.sh outside "
                           "the sandbox first (it downloads ~40 MB from deb.debian.org once)"
                           % MIRROR_CACHE)
def test_debootstrap_image(ansible, tmp, serve):
    mirror = serve(MIRROR_CACHE)
    deb = dict(source="debootstrap", suite="bookworm", mirror=mirror.url + "/debian")

    def task(name, image_name="debian", **kw):
        return dict(image(name, tmp, image=image_name, **dict(deb, **kw)), environment=LOCAL)

    res = ansible.tasks([task("deb"), task("again")])
    assert res.rc == 0 and res.changed == 1, res
    built, again = res.result("deb"), res.result("again")
    assert again["changed"] is False and again["commands"] == [] and again["rootfs"] == built["rootfs"]
    assert built["image"]["manifest"]["source"]["mirror"] == mirror.url + "/debian"
    rootfs = built["rootfs"]
    assert "VERSION_CODENAME=bookworm" in open(rootfs + "/etc/os-release").read().splitlines()
    assert os.access(rootfs + "/bin/sh", os.X_OK) and os.access(rootfs + "/usr/bin/apt-get", os.X_OK)
    out = sh("chroot", rootfs, "/bin/sh", "-c", "dpkg-query -W -f '${Status}' apt; echo; apt-get --version")
    assert out.startswith("install ok installed\napt "), out
    # Everything came from the served mirror, signed Release first; nothing was missing.
    paths = [path for dummy, path, dummy in mirror.log]
    assert paths[0] == "/debian/dists/bookworm/InRelease", paths[:3]
    assert not [r for r in mirror.log if r[2] != 200], mirror.log
    assert len([p for p in paths if p.startswith("/debian/pool/") and p.endswith(".deb")]) > 50

    # debootstrap checks the signature with Debian's keyring: a forged InRelease is refused.
    forged = tmp / "forged/debian"
    os.makedirs(str(forged / "dists/bookworm"))
    os.symlink(os.path.join(MIRROR_CACHE, "debian/pool"), str(forged / "pool"))
    for name in ("main", "Release", "Release.gpg"):
        os.symlink(os.path.join(MIRROR_CACHE, "debian/dists/bookworm", name),
                   str(forged / "dists/bookworm" / name))
    text = open(os.path.join(MIRROR_CACHE, "debian/dists/bookworm/InRelease")).read()
    assert "\nLabel: Debian\n" in text
    (forged / "dists/bookworm/InRelease").write_text(text.replace("\nLabel: Debian\n", "\nLabel: Debain\n"))
    evil = serve(tmp / "forged")
    res = ansible.tasks([dict(task("forged", image_name="forged", mirror=evil.url + "/debian"),
                              ignore_errors=True)])
    msg = res.result("forged")["msg"]
    assert res.result("forged")["failed"] and "Invalid Release signature" in msg, res
    left = tmp / "images/forged"
    assert not left.exists(), os.listdir(str(left))
    assert not [p for dummy, p, dummy in evil.log if "/pool/" in p], evil.log  # stopped before any .deb

    res = ansible.tasks([image("gone", tmp, image="debian", state="absent"),
                         image("gone too", tmp, image="forged", state="absent")])
    assert res.rc == 0 and res.result("gone")["changed"], res
    assert os.listdir(str(tmp / "images")) == []
