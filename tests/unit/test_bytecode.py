# -*- coding: utf-8 -*-
"""Bytecode in a payload zip: made by the target's interpreter, used by zipimport, cached.

zipimport raises the ``compile`` audit event for every source it compiles; a module
imported from its .pyc raises none. The interpreter here is this test's own Python.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.handbuilt.containers.plugins.plugin_utils import bytecode

SOURCES = {
    "pkg/__init__.py": b"",
    "pkg/mod.py": b"VALUE = 42\r\ndef where():\r\n    return __file__\r\n",
    "data.txt": b"not python",
}

# Imports pkg.mod from the zip given as argv[1]; prints what it found and which
# files of the zip were compiled from source on the way.
IMPORTER = r"""
import json, sys
compiled = []
sys.addaudithook(lambda event, args: event == "compile" and compiled.append(str(args[1])))
sys.path.insert(0, sys.argv[1])
import pkg.mod
print(json.dumps({"value": pkg.mod.VALUE, "compiled": sorted({c for c in compiled if "pkg" in c})}))
"""


def make_zip(files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return out.getvalue()


def import_from(tmp_path, zip_bytes):
    path = tmp_path / "payload.zip"
    path.write_bytes(zip_bytes)
    done = subprocess.run([sys.executable, "-I", "-c", IMPORTER, str(path)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_sources_are_compiled_on_every_import_without_bytecode(tmp_path):
    found = import_from(tmp_path, make_zip(SOURCES))
    assert found["value"] == 42 and len(found["compiled"]) == 2


def test_the_interpreter_compiles_every_source_and_zipimport_uses_it(tmp_path):
    merged = bytecode.compile_payload(make_zip(SOURCES), sys.executable, "handbuilt.containers.x")
    names = zipfile.ZipFile(io.BytesIO(merged)).namelist()
    assert sorted(names) == sorted(list(SOURCES) + ["pkg/__init__.pyc", "pkg/mod.pyc"])
    found = import_from(tmp_path, merged)
    assert found == {"value": 42, "compiled": []}


def test_bytecode_not_matching_its_source_is_skipped(tmp_path):
    """A checked-hash .pyc: if the source beside it differs, zipimport compiles the source."""
    merged = bytecode.compile_payload(make_zip(SOURCES), sys.executable, "x")
    entries = {info.filename: zipfile.ZipFile(io.BytesIO(merged)).read(info)
               for info in zipfile.ZipFile(io.BytesIO(merged)).infolist()}
    entries["pkg/mod.py"] = b"VALUE = 7\n"
    found = import_from(tmp_path, make_zip(entries))
    assert found["value"] == 7 and len(found["compiled"]) == 1


def test_another_pythons_bytecode_is_skipped(tmp_path):
    merged = bytecode.compile_payload(make_zip(SOURCES), sys.executable, "x")
    zf = zipfile.ZipFile(io.BytesIO(merged))
    entries = {info.filename: zf.read(info) for info in zf.infolist()}
    entries["pkg/mod.pyc"] = b"\x00\x00\r\n" + entries["pkg/mod.pyc"][4:]  # another magic number
    found = import_from(tmp_path, make_zip(entries))
    assert found["value"] == 42 and len(found["compiled"]) == 1


def test_code_is_named_after_the_payload_not_its_temp_dir():
    merged = bytecode.compile_payload(make_zip(SOURCES), sys.executable, "handbuilt.containers.netns")
    import marshal
    code = marshal.loads(zipfile.ZipFile(io.BytesIO(merged)).read("pkg/mod.pyc")[16:])
    assert code.co_filename == "ansible_handbuilt.containers.netns_payload.zip/pkg/mod.py"


def test_an_interpreter_that_fails_or_lies_is_an_error(tmp_path):
    with pytest.raises(bytecode.BytecodeError, match="did not run"):
        bytecode.compile_payload(make_zip(SOURCES), str(tmp_path / "no-python"), "x")
    bad = tmp_path / "python"
    bad.write_text("#!/bin/sh\nexit 3\n")
    bad.chmod(0o755)
    with pytest.raises(bytecode.BytecodeError, match="failed"):
        bytecode.compile_payload(make_zip(SOURCES), str(bad), "x")
    bad.write_text("#!/bin/sh\necho not a zip\n")
    with pytest.raises(bytecode.BytecodeError, match="no zip"):
        bytecode.compile_payload(make_zip(SOURCES), str(bad), "x")
    # Extra entries (anything but a .pyc of one of the payload's sources) are refused.
    other = base64.b64encode(make_zip({"evil.pyc": b"x"})).decode()
    bad.write_text("#!/bin/sh\ncat >/dev/null; echo %s | base64 -d\n" % other)
    with pytest.raises(bytecode.BytecodeError, match="unexpected entry 'evil.pyc'"):
        bytecode.compile_payload(make_zip(SOURCES), str(bad), "x")


def test_cached_per_payload_and_interpreter(tmp_path, monkeypatch):
    zip_data = base64.b64encode(make_zip(SOURCES))
    first, made = bytecode.cached_zip_data(str(tmp_path), "x-1", zip_data, sys.executable, "x")
    assert made and len(os.listdir(tmp_path)) == 1
    calls = []
    monkeypatch.setattr(bytecode, "compile_payload", lambda *a: calls.append(a))
    again, made = bytecode.cached_zip_data(str(tmp_path), "x-1", zip_data, sys.executable, "x")
    assert (again, made, calls) == (first, False, [])
    monkeypatch.undo()
    # A new payload of the same module replaces the entry; another module's stays.
    other = base64.b64encode(make_zip(dict(SOURCES, **{"pkg/new.py": b"NEW = 1\n"})))
    bytecode.cached_zip_data(str(tmp_path), "x-1", other, sys.executable, "x")
    bytecode.cached_zip_data(str(tmp_path), "y-1", zip_data, sys.executable, "y")
    assert sorted(n.split("-")[0] for n in os.listdir(tmp_path)) == ["x", "y"]
    with pytest.raises(bytecode.BytecodeError, match="not base64"):
        bytecode.cached_zip_data(str(tmp_path), "x-1", b"@@@", sys.executable, "x")


def test_the_payload_inside_an_older_wrapper_script():
    """ansible-core 2.16-2.18 assign it in the wrapper's main function."""
    wrapper = b"def _ansiballz_main():\n    ZIPDATA = 'QUJD'\n    ANSIBALLZ_PARAMS = '{}'\n"
    assert bytecode.zip_data_of(wrapper) == b"QUJD"
    assert bytecode.with_zip_data(wrapper, b"REVG") == wrapper.replace(b"QUJD", b"REVG")


def test_the_payload_inside_a_wrapper_script():
    wrapper = (b"def _ansiballz_main(zip_data, params): pass\n"
               b"if __name__ == '__main__':\n    _ansiballz_main(\nparams='{}',\nzip_data='QUJD',\n)\n")
    assert bytecode.zip_data_of(wrapper) == b"QUJD"
    replaced = bytecode.with_zip_data(wrapper, b"REVG")
    assert replaced == wrapper.replace(b"QUJD", b"REVG")
    with pytest.raises(bytecode.BytecodeError, match="0 zip_data"):
        bytecode.zip_data_of(b"ZIPDATA = '''QUJD'''")
    with pytest.raises(bytecode.BytecodeError, match="2 zip_data"):
        bytecode.zip_data_of(wrapper + b"zip_data='QUJD'")


@pytest.mark.parametrize("shebang, interpreter", [
    ("#!/usr/bin/python3", "/usr/bin/python3"),
    ("#!/usr/bin/env python3", None),
    ("#!/usr/bin/python3 -O", None),
    ("#!python3", None),
    (None, None),
])
def test_the_interpreter_of_a_shebang(shebang, interpreter):
    assert bytecode.interpreter_of(shebang) == interpreter
