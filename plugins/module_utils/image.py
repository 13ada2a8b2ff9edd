# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root filesystem images: read-only lower layers, built atomically and content-addressed.

Layout under ``images_dir`` (default ``/var/lib/handbuilt/images``)::

    <name>/current -> <source>-<digest16>      relative symlink, switched atomically
    <name>/<source>-<digest16>/manifest.json   what was built from what (the ownership mark)
    <name>/<source>-<digest16>/rootfs/         the lower dir for overlay_mount
    <name>/.build-<version>/                   a build in progress (never used as an image)

The digest covers the whole source declaration (busybox and init binaries' sha256, the
tarball's checksum, the debootstrap suite and mirror, ...), so declaring the same source
again is a no-op and a changed source builds a new version next to the old one. A version
dir only appears, complete, by rename(2); ``current`` is replaced by renaming a new
symlink over it. Old versions stay (overlays that use them keep working) until pruned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time

from ansible_collections.handbuilt.containers.plugins.module_utils import overlay
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import (
    Op,
    PlanError,
    render,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import Resource
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput

LAYOUT = 1  # bump when the busybox layout changes: every busybox image is then rebuilt
DEFAULT_IMAGES_DIR = "/var/lib/handbuilt/images"
DEFAULT_BUSYBOX = "/bin/busybox"
DEFAULT_INIT = "/usr/bin/tini-static"
INIT_IN_IMAGE = "/sbin/tini"
CHECKSUM_ALGOS = ("sha256", "sha384", "sha512")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SUITE_RE = re.compile(r"^[a-z][a-z0-9.-]{0,31}$")
_PKG_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
BUSYBOX_DIRS = [("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755),
                ("usr/sbin", 0o755), ("etc", 0o755), ("proc", 0o555), ("sys", 0o555),
                ("dev", 0o755), ("tmp", 0o1777), ("run", 0o755), ("var", 0o755),
                ("var/tmp", 0o1777), ("root", 0o700), ("home", 0o755)]


def sha256_file(path, algo="sha256"):
    digest = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_checksum(value):
    """'sha256:<hex>' -> (algo, hex); the checksum is required for tarballs."""
    if not isinstance(value, str) or ":" not in value:
        raise InvalidInput("checksum", "%r must look like sha256:<hex digest>" % (value,))
    algo, dummy, hexdigest = value.partition(":")
    algo, hexdigest = algo.strip().lower(), hexdigest.strip().lower()
    if algo not in CHECKSUM_ALGOS:
        raise InvalidInput("checksum", "algorithm %r is not one of %s" % (algo, ", ".join(CHECKSUM_ALGOS)))
    if not re.match(r"^[0-9a-f]+$", hexdigest) or len(hexdigest) != hashlib.new(algo).digest_size * 2:
        raise InvalidInput("checksum", "%r is not a %s hex digest" % (hexdigest, algo))
    return algo, hexdigest


def host_nameservers(paths=("/run/systemd/resolve/resolv.conf", "/etc/resolv.conf")):
    """The host's upstream nameservers; loopback ones (systemd-resolved's stub) are dropped."""
    for path in paths:
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            continue
        return nameservers_from(text)
    return []


def nameservers_from(text):
    servers = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            addr = words[1]
            if addr.startswith("127.") or addr == "::1":
                continue
            if addr not in servers:
                servers.append(addr)
    return servers


def apt_mirror(text_by_file):
    """The Debian archive URI from apt sources ({file name: text}), or None.

    One-line ``deb URI suite comps`` entries and deb822 ``.sources`` stanzas are read;
    security and updates archives are skipped, and so are entries without the ``main``
    component (third-party repositories such as ``.../linux/debian bookworm stable``).
    """
    entries = []
    for fname in sorted(text_by_file):
        text = text_by_file[fname]
        if fname.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, dummy, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []):
                    for uri in fields.get("uris", []):
                        entries.append((uri, fields.get("suites", []), fields.get("components", [])))
        else:
            for line in text.splitlines():
                line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])
                words = line.split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], [words[2]], words[3:]))
    for uri, suites, components in entries:
        if "security" in uri or all(s.endswith(("-security", "-updates", "-backports"))
                                    for s in suites or ["x-updates"]):
            continue
        if "main" not in components:
            continue
        return uri.rstrip("/")
    return None


def host_apt_mirror():
    texts = {}
    paths = ["/etc/apt/sources.list"]
    if os.path.isdir("/etc/apt/sources.list.d"):
        paths += [os.path.join("/etc/apt/sources.list.d", f)
                  for f in sorted(os.listdir("/etc/apt/sources.list.d"))
                  if f.endswith((".list", ".sources"))]
    for path in paths:
        try:
            with open(path) as fh:
                texts[path] = fh.read()
        except OSError:
            pass
    return apt_mirror(texts) or "http://deb.debian.org/debian"


def run(argv, timeout):
    """Run ``argv``, never a shell; its stdout, or PlanError with the end of its output."""
    # Not run_command: the models hold no AnsibleModule.
    # pylint: disable-next=ansible-bad-function
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise PlanError("%s failed (%d): %s" % (render(argv), proc.returncode,
                                                (proc.stdout + proc.stderr).strip()[-2000:]))
    return proc.stdout


def is_url(value):
    return bool(re.match(r"^(https?|ftp)://", value or ""))


def busybox_etc(hostname, nameservers):
    """The /etc files of a busybox image: {relative path: content}."""
    resolv = "".join("nameserver %s\n" % ns for ns in nameservers) or \
        "# no upstream nameserver was found on the host that built this image\n"
    return {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
        "etc/hostname": "%s\n" % hostname,
        "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "etc/resolv.conf": resolv,
    }


def printf_command(content, dest):
    lines = content.rstrip("\n").split("\n")
    return render(["printf", "%s\\n"] + lines) + " > " + render([dest])


class Image(Resource):
    """One named image: its versions on disk and which one is ``current``."""

    def __init__(self, name, source="busybox", images_dir=DEFAULT_IMAGES_DIR, state="present",
                 tarball=None, checksum=None, busybox=None, init=None, hostname=None,
                 nameservers=None, suite="bookworm", mirror=None, variant="minbase",
                 include=None, prune=False, force=False, check_mode=False, timeout=1800):
        super().__init__()
        if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
            raise InvalidInput("name", "%r must be 1-64 letters, digits, '_', '.' or '-', starting "
                               "with a letter or digit" % (name,))
        self.name = name
        if state not in ("present", "absent"):
            raise InvalidInput("state", "must be present or absent")
        self.state = state
        self.source = source
        self.images_dir = overlay.check_path("images_dir", images_dir)
        self.dir = os.path.join(self.images_dir, name)
        self.prune = prune
        self.force = force
        self.check_mode = check_mode
        self.timeout = timeout
        self.spec = None
        self._after = None
        self.unmounted_first = ()  # see expect_unmounted
        if state == "absent":
            return
        if source == "busybox":
            self.busybox = overlay.check_path("busybox", busybox or DEFAULT_BUSYBOX, system_ok=True)
            if not os.path.isfile(self.busybox) or not os.access(self.busybox, os.X_OK):
                raise InvalidInput("busybox", "%s is not an executable file (Debian: apt-get install "
                                   "busybox-static)" % self.busybox)
            if init:
                self.init = overlay.check_path("init", init, system_ok=True)
                if not os.path.isfile(self.init):
                    raise InvalidInput("init", "%s does not exist" % self.init)
            else:
                self.init = DEFAULT_INIT if os.path.isfile(DEFAULT_INIT) else None
            self.hostname = hostname or re.sub(r"[^A-Za-z0-9-]", "-", name)
            if len(self.hostname.encode()) > 64 or not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]*$", self.hostname):
                raise InvalidInput("hostname", "%r is not a valid hostname" % self.hostname)
            self.nameservers = list(nameservers) if nameservers is not None else host_nameservers()
            for ns in self.nameservers:
                if not re.match(r"^[0-9A-Fa-f.:]+$", str(ns)):
                    raise InvalidInput("nameservers", "%r is not an IP address" % (ns,))
            self.spec = {"source": "busybox", "layout": LAYOUT,
                         "busybox_sha256": sha256_file(self.busybox),
                         "init_sha256": sha256_file(self.init) if self.init else None,
                         "hostname": self.hostname, "nameservers": self.nameservers}
        elif source == "tarball":
            if not tarball:
                raise InvalidInput("tarball", "required with source=tarball (a local path or a URL)")
            if checksum is None:
                raise InvalidInput("checksum", "required with source=tarball (e.g. sha256:<hex>)")
            self.algo, self.hexdigest = parse_checksum(checksum)
            if is_url(tarball):
                self.tarball = tarball
            else:
                self.tarball = overlay.check_path("tarball", tarball, system_ok=True)
            self.spec = {"source": "tarball", "checksum": "%s:%s" % (self.algo, self.hexdigest)}
        elif source == "debootstrap":
            if not _SUITE_RE.match(suite or ""):
                raise InvalidInput("suite", "%r is not a Debian suite name" % (suite,))
            self.suite = suite
            self.mirror = mirror or host_apt_mirror()
            if not is_url(self.mirror) and not self.mirror.startswith("file:/"):
                raise InvalidInput("mirror", "%r is not an http(s), ftp or file URL" % self.mirror)
            if variant not in ("minbase", "buildd", "fakechroot", "-"):
                raise InvalidInput("variant", "%r is not a debootstrap variant" % variant)
            self.variant = variant
            self.include = sorted(set(include or []))
            for pkg in self.include:
                if not _PKG_RE.match(pkg):
                    raise InvalidInput("include", "%r is not a Debian package name" % pkg)
            self.spec = {"source": "debootstrap", "suite": suite, "mirror": self.mirror,
                         "variant": variant, "include": self.include,
                         "arch": os.uname().machine}
        else:
            raise InvalidInput("source", "must be busybox, tarball or debootstrap")
        canonical = json.dumps(self.spec, sort_keys=True, separators=(",", ":"))
        self.digest = hashlib.sha256(canonical.encode()).hexdigest()
        self.version = "%s-%s" % (source, self.digest[:16])
        self.build_dir = os.path.join(self.dir, ".build-%s" % self.version)

    # --- reading ------------------------------------------------------------
    def read(self):
        state = {"exists": os.path.isdir(self.dir), "versions": {}, "current": None,
                 "builds": [], "other": []}
        if not state["exists"]:
            return state
        for entry in sorted(os.listdir(self.dir)):
            full = os.path.join(self.dir, entry)
            if entry == "current":
                try:
                    state["current"] = os.readlink(full)
                except OSError:
                    state["other"].append(entry)
            elif entry.startswith(".build-"):
                state["builds"].append(full)
            else:
                try:
                    with open(os.path.join(full, "manifest.json")) as fh:
                        manifest = json.load(fh)
                except (OSError, ValueError):
                    state["other"].append(entry)
                    continue
                if os.path.isdir(os.path.join(full, "rootfs")):
                    state["versions"][entry] = manifest
                else:
                    state["other"].append(entry)
        return state

    def owned(self, current):
        return bool(current["versions"]) and not current["other"]

    # --- planning -------------------------------------------------------------
    def plan(self, current):
        if self.state == "absent":
            return self._plan_absent(current)
        if current["exists"] and current["other"]:
            raise PlanError("name: %s exists and holds %s, which is not a handbuilt.containers image "
                            "(no manifest.json and rootfs/); refusing to touch it"
                            % (self.dir, ", ".join(current["other"])))
        ops = [Op(render(["rm", "-rf", d]), self._rmtree, d) for d in current["builds"]]
        have = current["versions"].get(self.version)
        if have is not None and have.get("digest") != "sha256:" + self.digest:
            raise PlanError("%s holds a different image (digest %s); remove it"
                            % (os.path.join(self.dir, self.version), have.get("digest")))
        if have is None:
            ops += self._build_ops()
        if current["current"] != self.version:
            link = os.path.join(self.dir, "current")
            ops.append(Op("ln -sfn %s %s.new && mv -T %s.new %s" % (
                render([self.version]), render([link]), render([link]), render([link])),
                self._switch_current))
        keep = [v for v in current["versions"] if v != self.version]
        if self.prune and keep:
            in_use = self._in_use()
            for version in keep:
                users = self._users(in_use, version)
                if users:
                    self.warnings.append("version %s is kept: %s uses it" % (version, users[0]))
                    continue
                ops.append(Op(render(["rm", "-rf", os.path.join(self.dir, version)]),
                              self._rmtree, os.path.join(self.dir, version)))
                keep = [v for v in keep if v != version]
        self._after = self._view(self.version, sorted(keep + [self.version]))
        return ops

    def _plan_absent(self, current):
        self._after = {"state": "absent", "name": self.name}
        if not current["exists"]:
            return []
        if current["other"] and not self.force:
            raise PlanError("name: %s holds %s, which handbuilt.containers did not build; refusing "
                            "to delete it. Set force: true to delete it anyway."
                            % (self.dir, ", ".join(current["other"])))
        in_use = self._in_use()
        for version in current["versions"]:
            users = self._users(in_use, version)
            if users:
                raise PlanError("image %s version %s is in use by %s; remove the containers (their "
                                "overlay mounts) that use it first" % (self.name, version, users[0]))
        return [Op(render(["rm", "-rf", self.dir]), self._rmtree, self.dir)]

    def expect_unmounted(self, devices):
        """Overlays (superblocks ``major:minor``) that the same run unmounts before this
        image's turn (compose removes its containers first): check mode predicts past
        them; a real run finds them gone or refuses."""
        if self.check_mode:
            self.unmounted_first = tuple(devices)

    def _in_use(self):
        return overlay.overlay_lowers_everywhere(ignore_devices=self.unmounted_first)

    def _users(self, in_use, version):
        base = os.path.join(self.dir, version)
        real = os.path.realpath(base)
        return [user for lower, user in in_use.items()
                if overlay.is_within(lower, base) or overlay.is_within(lower, real)]

    def _build_ops(self):
        build, rootfs = self.build_dir, os.path.join(self.build_dir, "rootfs")
        ops = [Op(render(["mkdir", "-p", rootfs]), os.makedirs, rootfs, 0o755)]
        if self.source == "busybox":
            ops += self._busybox_ops(rootfs)
        elif self.source == "tarball":
            ops += self._tarball_ops(build, rootfs)
        else:
            ops += self._debootstrap_ops(rootfs)
        manifest = os.path.join(build, "manifest.json")
        text = self._manifest_text()
        ops.append(Op(render(["echo", text]) + " > " + render([manifest]),
                      self._write, manifest, text + "\n"))
        ops.append(Op(render(["mv", "-T", build, os.path.join(self.dir, self.version)]),
                      os.rename, build, os.path.join(self.dir, self.version)))
        return ops

    def _manifest_text(self):
        return json.dumps({"name": self.name, "version": self.version,
                           "digest": "sha256:" + self.digest, "source": self.spec,
                           "init": INIT_IN_IMAGE if self.spec.get("init_sha256") else None,
                           "builder": "handbuilt.containers.image",
                           "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                          sort_keys=True)

    # busybox ------------------------------------------------------------------
    def _busybox_ops(self, rootfs):
        ops = [Op("cd %s && mkdir -p %s" % (render([rootfs]), " ".join(d for d, dummy in BUSYBOX_DIRS)),
                  self._busybox_dirs, rootfs),
               Op(render(["cp", self.busybox, os.path.join(rootfs, "bin/busybox")]),
                  self._copy_exec, self.busybox, os.path.join(rootfs, "bin/busybox")),
               Op("for applet in $(%s --list-full); do ln -s /bin/busybox %s/$applet; done"
                  % (render([self.busybox]), render([rootfs])), self._applets, rootfs)]
        if self.init:
            dest = rootfs + INIT_IN_IMAGE
            ops.append(Op(render(["cp", self.init, dest]), self._copy_exec, self.init, dest))
        for rel, content in sorted(busybox_etc(self.hostname, self.nameservers).items()):
            dest = os.path.join(rootfs, rel)
            ops.append(Op(printf_command(content, dest), self._write, dest, content))
        return ops

    def _busybox_dirs(self, rootfs):
        for rel, mode in BUSYBOX_DIRS:
            path = os.path.join(rootfs, rel)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)

    def _applets(self, rootfs):
        for rel in run([self.busybox, "--list-full"], 60).split():
            rel = rel.strip("/")
            if not rel or ".." in rel.split("/") or rel == "bin/busybox":
                continue
            dest = os.path.join(rootfs, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if not os.path.lexists(dest):
                os.symlink("/bin/busybox", dest)

    @staticmethod
    def _copy_exec(src, dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o755)

    @staticmethod
    def _write(dest, content):
        with open(dest, "w") as fh:
            fh.write(content)
        os.chmod(dest, 0o644)

    # tarball ------------------------------------------------------------------
    def _tarball_ops(self, build, rootfs):
        ops = []
        if is_url(self.tarball):
            local = os.path.join(build, "source.tar")
            ops.append(Op(render(["curl", "-fL", "-o", local, self.tarball]), self._download, local))
        else:
            local = self.tarball
            if not os.path.isfile(local):
                msg = "tarball: %s does not exist" % local
                if not self.check_mode:
                    raise PlanError(msg)
                self.warnings.append(msg)
        ops.append(Op("echo %s | %ssum -c -" % (render(["%s  %s" % (self.hexdigest, local)]), self.algo),
                      self._verify, local))
        ops.append(Op(render(["tar", "-xpf", local, "-C", rootfs, "--numeric-owner"]),
                      self._untar, local, rootfs))
        if local.startswith(build):
            ops.append(Op(render(["rm", "-f", local]), os.unlink, local))
        return ops

    def _download(self, dest):
        from ansible.module_utils.urls import open_url

        response = open_url(self.tarball, timeout=60, follow_redirects="all")
        with open(dest, "wb") as fh:
            shutil.copyfileobj(response, fh, 1 << 20)

    def _verify(self, path):
        got = sha256_file(path, self.algo)
        if got != self.hexdigest:
            raise PlanError("checksum: %s of %s is %s, not the declared %s; the image was not built"
                            % (self.algo, self.tarball, got, self.hexdigest))

    def _untar(self, local, rootfs):
        run(["tar", "-xpf", local, "-C", rootfs, "--numeric-owner"], self.timeout)
        if not os.listdir(rootfs):
            raise PlanError("tarball: %s holds no files" % self.tarball)

    # debootstrap --------------------------------------------------------------
    def _debootstrap_argv(self, rootfs):
        argv = ["debootstrap", "--variant=%s" % self.variant]
        if self.include:
            argv.append("--include=%s" % ",".join(self.include))
        return argv + [self.suite, rootfs, self.mirror]

    def _debootstrap_ops(self, rootfs):
        argv = self._debootstrap_argv(rootfs)
        return [Op(render(argv), self._debootstrap, argv)]

    def _debootstrap(self, argv):
        if not shutil.which("debootstrap"):
            raise PlanError("debootstrap is not installed (apt-get install debootstrap)")
        run(argv, self.timeout)

    # common -------------------------------------------------------------------
    def _switch_current(self):
        link = os.path.join(self.dir, "current")
        tmp = "%s.new-%d" % (link, os.getpid())
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.version, tmp)
        os.rename(tmp, link)

    def _rmtree(self, path):
        """rm -rf, after unmounting anything a failed build left mounted beneath it."""
        mounts = overlay.read_mountinfo()
        for mountpoint in sorted(overlay.mounts_beneath(mounts, path, exclude_self=False),
                                 reverse=True):
            overlay.sys_umount(mountpoint, 2)  # MNT_DETACH: only inside our own build dir
        shutil.rmtree(path)

    def converge(self, check_mode):
        try:
            return super().converge(check_mode)
        except Exception:
            if not check_mode and self.spec is not None and os.path.lexists(self.build_dir):
                try:
                    self._rmtree(self.build_dir)  # never leave a half-written image behind
                    os.rmdir(self.dir)  # nor the image's directory if this was its first build
                except OSError:
                    pass  # other versions live there
            raise

    # --- views ---------------------------------------------------------------
    def _view(self, version, versions):
        return {"state": "present", "name": self.name, "current": version,
                "versions": sorted(versions)}

    def view(self, current):
        if not current["exists"]:
            return {"state": "absent", "name": self.name}
        return self._view(current["current"], sorted(current["versions"]))

    def predict(self, before):
        return self._after if self._after is not None else before

    def facts(self, current):
        version = current["current"]
        if not current["exists"] or version not in current["versions"]:
            return {"image": None, "rootfs": None}
        manifest = current["versions"][version]
        rootfs = os.path.join(self.dir, version, "rootfs")
        return {"rootfs": rootfs, "image": {
            "name": self.name, "rootfs": rootfs, "path": os.path.join(self.dir, version),
            "current": os.path.join(self.dir, "current", "rootfs"), "version": version,
            "digest": manifest.get("digest"), "source": manifest.get("source", {}).get("source"),
            "init": manifest.get("init"), "versions": sorted(current["versions"]),
            "manifest": manifest}}
