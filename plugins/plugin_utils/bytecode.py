# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bytecode, made once by the target's own Python, inside a module's AnsiballZ payload.

A module's payload is a zip of sources that the target imports with zipimport,
which never caches bytecode: every module run compiles Ansible's module_utils
and the collection's again - about 0.15 s of each ``compose`` run, 0.1 s of a
small module (docs/performance.md). zipimport does load a ``name.pyc`` it finds
beside ``name.py`` in the zip, and skips it - falling back to the source - when
its magic number is another Python's or its hash is not the source's. So:

- the target's interpreter compiles every ``.py`` of the payload into a
  checked-hash ``.pyc`` (PEP 552), in one short process (``COMPILER``);
- the zip with both is cached on the controller, keyed by the payload's hash and
  the interpreter's path, size and mtime, and reused until either changes.

Only for targets whose interpreter is on the controller (the local connection).
Bytecode triples the payload, which costs little read from a file, or from stdin
at once as the action has the interpreter do with pipelining (STDIN_RUNNER in
plugins/action/run_module.py: with PYTHONUNBUFFERED set, Python reads a script
from stdin a byte per system call). Anything unusual - an interpreter that fails, output
that is not what was asked for - means the payload is used as Ansible built it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import subprocess
import tempfile
import zipfile

# Runs in the target's interpreter (``-I -S``: nothing from the environment, no
# site-packages): reads the payload zip on stdin, writes a zip of .pyc on stdout.
# The code's file name is what zipimport itself gives it, without the random temp
# dir the payload lands in (``ansible_<module>_payload.zip/<path>``).
COMPILER = r"""
import importlib.util, io, marshal, sys, zipfile
prefix = sys.argv[1]
payload = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))
out = io.BytesIO()
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as pycs:
    for info in payload.infolist():
        if not info.filename.endswith(".py"):
            continue
        source = payload.read(info)
        code = compile(source.replace(b"\r\n", b"\n").replace(b"\r", b"\n"),
                       prefix + info.filename, "exec", dont_inherit=True)
        header = (importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little")
                  + importlib.util.source_hash(source))
        pycs.writestr(zipfile.ZipInfo(info.filename[:-3] + ".pyc", info.date_time),
                      header + marshal.dumps(code))
sys.stdout.buffer.write(out.getvalue())
"""

TIMEOUT = 60
# How ansible-core's AnsiballZ wrapper is given the payload: an argument zip_data='...'
# (2.19+) or an assignment ZIPDATA = '...' (2.16-2.18). A wrapper of another form is
# left as it is.
ZIP_DATA = re.compile(rb"\b(zip_data=|ZIPDATA = )'([A-Za-z0-9+/=]+)'")


class BytecodeError(Exception):
    """The payload stays as Ansible built it; the message says why."""


def interpreter_of(shebang):
    """The interpreter of a ``#!/usr/bin/python3`` line, or None (``env``, arguments, none)."""
    if not shebang or not shebang.startswith("#!"):
        return None
    words = shebang[2:].split()
    if len(words) != 1 or not os.path.isabs(words[0]) or os.path.basename(words[0]) == "env":
        return None
    return words[0]


def interpreter_id(interpreter):
    """Changes when the interpreter does: its real path, size and mtime."""
    real = os.path.realpath(interpreter)
    st = os.stat(real)
    text = "%s:%d:%d" % (real, st.st_size, st.st_mtime_ns)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def compile_payload(zip_bytes, interpreter, module_name):
    """The payload zip plus a .pyc for each of its .py, made by ``interpreter``."""
    try:
        done = subprocess.run(
            [interpreter, "-I", "-S", "-c", COMPILER, "ansible_%s_payload.zip/" % module_name],
            input=zip_bytes, capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BytecodeError("%s did not run: %s" % (interpreter, exc))
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise BytecodeError("%s failed: %s" % (interpreter, " ".join(tail)))
    sources = set(zipfile.ZipFile(io.BytesIO(zip_bytes)).namelist())
    merged = io.BytesIO(zip_bytes)
    try:
        pycs = zipfile.ZipFile(io.BytesIO(done.stdout))
        with zipfile.ZipFile(merged, "a") as out:
            for info in pycs.infolist():
                if not info.filename.endswith(".pyc") or info.filename[:-1] not in sources:
                    raise BytecodeError("unexpected entry %r from %s" % (info.filename, interpreter))
                out.writestr(info, pycs.read(info), zipfile.ZIP_DEFLATED)
    except zipfile.BadZipFile as exc:
        raise BytecodeError("%s gave no zip: %s" % (interpreter, exc))
    return merged.getvalue()


def cached_zip_data(root, name, zip_data, interpreter, module_name):
    """``zip_data`` (base64) with bytecode for ``interpreter``, from ``root`` or made and kept there.

    ``name`` (the module and checkout) groups a module's entries: a new one replaces
    the others of the same module, checkout and interpreter.
    """
    try:
        zip_bytes = base64.b64decode(zip_data, validate=True)
    except binascii.Error as exc:
        raise BytecodeError("the payload is not base64: %s" % exc)
    group = "%s-%s" % (name, interpreter_id(interpreter))
    entry = "%s-%s.b64" % (group, hashlib.sha256(zip_bytes).hexdigest()[:24])
    path = os.path.join(root, entry)
    try:
        with open(path, "rb") as fh:
            return fh.read(), False
    except FileNotFoundError:
        pass
    data = base64.b64encode(compile_payload(zip_bytes, interpreter, module_name))
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".save-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # atomic: another fork reads no file or a whole one
    except OSError:
        os.unlink(tmp)
        raise
    for other in os.listdir(root):
        if other != entry and other.rsplit("-", 1)[0] == group:
            try:
                os.unlink(os.path.join(root, other))
            except OSError:
                pass
    return data, True


def zip_data_of(module_data):
    """The base64 payload inside a wrapper script; BytecodeError unless there is exactly one."""
    found = ZIP_DATA.findall(module_data)
    if len(found) != 1:
        raise BytecodeError("this Ansible's wrapper has %d zip_data arguments, not 1" % len(found))
    return found[0][1]


def with_zip_data(module_data, zip_data):
    """The wrapper script carrying another payload."""
    return ZIP_DATA.sub(lambda match: match.group(1) + b"'" + zip_data + b"'", module_data, count=1)
