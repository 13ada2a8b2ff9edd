# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep a module's AnsiballZ payload from one ansible-playbook run to the next.

Before a Python module runs, the controller builds its payload: a zip of the
module and every module_util it imports, found by parsing them all
(``recursive_finder``). For ``compose`` that is about 75 files and 0.4-0.7 s
on a small machine; Ansible caches the result only in the run's private temp
dir (``<local tmp>/ansiballz_cache``), so every run pays it again - a large
part of a re-run that changes nothing (docs/performance.md).

This cache copies the files Ansible wrote there into a directory of the
user's, under a key made of everything the payload is built from - Ansible's
version and the path, size and mtime of every file of Ansible's module_utils,
of the collection's module_utils and of the module (what Python's own
bytecode cache trusts) - and copies them back into the next run's temp dir
before Ansible looks. Any change to a source gives a new key; a cache that
cannot be used is skipped, never an error. The files are Ansible's own, copied
verbatim: the cache holds code the targets will run, so it is used only when
its directory belongs to this user and nobody else can write to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile

ENV = "HANDBUILT_PAYLOAD_CACHE"  # a directory, or "off"


def default_root(environ=None):
    """The cache directory, or None when the user turned it off."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, "")
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        return value
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "handbuilt.containers", "ansiballz")


def _tree_signature(digest, root, label):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                st = os.stat(path)
                digest.update(("%s:%s:%d:%d\n" % (label, os.path.relpath(path, root),
                                                  st.st_size, st.st_mtime_ns)).encode())


def key(module, module_path, source_dirs, version):
    """``<module>-<where>-<what>``: changes whenever a file the payload is built from changes.

    ``<where>`` names the checkout (the module's path), so two checkouts of the collection
    on one controller keep an entry each; ``source_dirs`` are the module_utils trees the
    module can import from.
    """
    where = hashlib.sha256(os.path.abspath(module_path).encode()).hexdigest()[:8]
    digest = hashlib.sha256(("%s\n" % version).encode())
    st = os.stat(module_path)
    digest.update(("module:%s:%d:%d\n" % (module_path, st.st_size, st.st_mtime_ns)).encode())
    for index, root in enumerate(source_dirs):
        digest.update(("root%d:%s\n" % (index, root)).encode())
        _tree_signature(digest, root, "root%d" % index)
    return "%s-%s-%s" % (module, where, digest.hexdigest()[:24])


def usable(root):
    """Create the cache root (0700) and say whether it is safe to use."""
    try:
        os.makedirs(root, 0o700, exist_ok=True)
        st = os.lstat(root)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _payload_files(directory, prefix):
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(prefix) and not n.endswith(".lock"))


def restore(root, entry, run_cache):
    """Copy a saved payload into this run's cache dir; how many files were copied."""
    saved = os.path.join(root, entry)
    copied = 0
    for name in _payload_files(saved, ""):
        target = os.path.join(run_cache, name)
        if os.path.exists(target):
            continue
        os.makedirs(run_cache, exist_ok=True)
        # Into a temp name first: Ansible (and the other forks) must never read half a file.
        fd, tmp = tempfile.mkstemp(dir=run_cache, prefix=".restore-")
        os.close(fd)
        shutil.copyfile(os.path.join(saved, name), tmp)
        os.replace(tmp, target)
        copied += 1
    return copied


def save(root, entry, run_cache, prefix):
    """Keep the payload files Ansible built this run (names starting with ``prefix``).

    Returns True when saved. Older entries of the same module and checkout are removed.
    """
    saved = os.path.join(root, entry)
    if os.path.isdir(saved):
        return False
    names = _payload_files(run_cache, prefix)
    if not names:
        return False
    staging = tempfile.mkdtemp(dir=root, prefix=".save-")
    try:
        for name in names:
            shutil.copyfile(os.path.join(run_cache, name), os.path.join(staging, name))
        os.rename(staging, saved)  # atomic; fails if another run saved it first
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False
    module_where = entry.rsplit("-", 1)[0]
    for other in os.listdir(root):
        if other != entry and other.rsplit("-", 1)[0] == module_where:
            shutil.rmtree(os.path.join(root, other), ignore_errors=True)
    return True
