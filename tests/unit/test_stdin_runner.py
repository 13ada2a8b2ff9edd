# -*- coding: utf-8 -*-
"""With pipelining, the action has the interpreter read the module from stdin at once
(STDIN_RUNNER): a script runs under it as it runs read by Python from stdin, and only
the module's own piped command is rewritten. That modules run this way is proven by
the integration tests that pipeline (tests/integration/test_playbooks.py, as nobody)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys

import pytest

from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.handbuilt.containers.plugins.action import run_module

SCRIPT = b"""# -*- coding: utf-8 -*-
import json, sys
print(json.dumps({"name": __name__, "file": __file__, "text": "\xc3\xa9t\xc3\xa9",
                  "stdin_left": sys.stdin.read()}))
"""


def run(argv, unbuffered):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"  # Python then reads a script from stdin a byte per read(2)
    proc = subprocess.run(argv, input=SCRIPT, env=env, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_script_runs_under_the_runner_as_it_runs_from_stdin(unbuffered):
    piped = run([sys.executable], unbuffered)
    runner = run([sys.executable, "-c", run_module.STDIN_RUNNER], unbuffered)
    assert runner == piped == {"name": "__main__", "file": "<stdin>", "text": u"\xe9t\xe9", "stdin_left": ""}


@pytest.fixture
def action(monkeypatch):
    sent = []
    monkeypatch.setattr(NormalAction, "_low_level_execute_command",
                        lambda self, cmd, *args, **kwargs: sent.append(cmd) or {"rc": 0})
    action = run_module.ActionModule.__new__(run_module.ActionModule)
    payload = b"#!/usr/bin/python3\n..."
    action._stdin_module = (payload, "/usr/bin/python3")
    return action, payload, sent


def test_only_the_modules_own_piped_command_is_rewritten(action):
    action, payload, sent = action
    action._low_level_execute_command("LANG=C /usr/bin/python3", sudoable=False, in_data=payload)
    action._low_level_execute_command("/usr/bin/python3", in_data=bytes(bytearray(payload)))  # another payload
    action._low_level_execute_command("/usr/bin/python3 /tmp/x/AnsiballZ_bridge.py", in_data=None)
    action._low_level_execute_command("rm -f -r /tmp/x", sudoable=False)
    assert sent == ["LANG=C /usr/bin/python3 -c " + shlex.quote(run_module.STDIN_RUNNER),
                    "/usr/bin/python3", "/usr/bin/python3 /tmp/x/AnsiballZ_bridge.py", "rm -f -r /tmp/x"]


@dataclasses.dataclass(frozen=True)
class Bits:
    """The shape of ansible-core 2.19+'s module bits (only the fields the action reads)."""
    b_module_data: bytes
    module_style: str
    shebang: str


@pytest.mark.parametrize("shape", ["2.19+", "2.16-2.18"])
def test_the_module_is_found_in_what_either_ansible_built(shape):
    data = b"#!/usr/bin/python3\n..."
    if shape == "2.19+":
        built = (Bits(data, "new", "#!/usr/bin/python3"), "/m/bridge.py")
    else:
        built = ("new", "#!/usr/bin/python3", data, "/m/bridge.py")
    module_data, interpreter, with_data = run_module.ansiballz_module(built)
    assert (module_data, interpreter) == (data, "/usr/bin/python3")
    other = with_data(b"other")
    assert run_module.ansiballz_module(other)[0] == b"other"
    assert other[-1] == "/m/bridge.py" and len(other) == len(built)


@pytest.mark.parametrize("built", [
    ("old", "#!/usr/bin/python3", b"...", "/m/x.sh"),        # not AnsiballZ
    ("new", "#!/usr/bin/env python3", b"...", "/m/x.py"),    # interpreter found at run time
    ("new", "#!/usr/bin/python3", "text", "/m/x.py"),        # a shape we do not know
    ("new", "#!/usr/bin/python3", b"..."),
    None,
])
def test_anything_else_is_left_as_ansible_built_it(built):
    assert run_module.ansiballz_module(built) is None
