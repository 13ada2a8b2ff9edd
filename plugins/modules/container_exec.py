#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_exec
short_description: Run a command inside a running container (what docker exec does)
version_added: 0.1.0
description:
  - Runs O(command) (an argv, never a shell) inside the container O(name) started by
    M(handbuilt.containers.container), the way C(nsenter --target PID --all) plus joining the
    container's cgroups does, and returns its exit status and output.
  - The command joins every namespace of the container's PID 1 (C(/proc/<pid>/ns/*), the user
    namespace last), each of its cgroups, its root and working directory, its environment (plus
    O(env)), and the container's capability set and C(no_new_privs).
  - Fails when the command exits non-zero (like M(ansible.builtin.command)); use C(failed_when) or
    C(ignore_errors) when a failure is the expected outcome.
  - Reports C(changed=false) unless O(report_changed=true) - running a command is treated as a
    read (verification, labs).
options:
  name:
    description: Name of a running container.
    type: str
    required: true
  command:
    description: The argv to run, for example C([ip, -br, addr]).
    type: list
    elements: str
    required: true
  chdir:
    description: Working directory inside the container; defaults to the container's workdir.
    type: str
  env:
    description: Extra environment variables on top of the container's own.
    type: dict
  stdin:
    description: Data fed to the command's standard input.
    type: str
  timeout:
    description: Kill the command (SIGKILL to its process group) after this many seconds.
    type: int
  report_changed:
    description: Report C(changed=true) (the command changed something).
    type: bool
    default: false
extends_documentation_fragment:
  - handbuilt.containers.common
attributes:
  check_mode:
    support: partial
    description: Can run in check mode.
    details: The command is not run; the task reports C(skipped) and returns C(cmd), what it would run.
  diff_mode:
    support: none
    description: Nothing to show.
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: What does PID 1 look like inside web?
  handbuilt.containers.container_exec:
    name: web
    command: [cat, /proc/1/status]
  register: status

- name: Ping the other container through the bridge
  handbuilt.containers.container_exec:
    name: web
    command: [ping, -c1, -W1, 10.10.0.3]
    timeout: 5
"""

RETURN = r"""
rc:
  description: Exit status of the command (128+N when killed by signal N).
  returned: when the command ran
  type: int
stdout:
  description: Standard output.
  returned: when the command ran
  type: str
stderr:
  description: Standard error.
  returned: when the command ran
  type: str
stdout_lines:
  description: Standard output split into lines.
  returned: when the command ran
  type: list
  elements: str
stderr_lines:
  description: Standard error split into lines.
  returned: when the command ran
  type: list
  elements: str
timed_out:
  description: True when O(timeout) expired and the command was killed.
  returned: when the command ran
  type: bool
pid:
  description: Host pid of the container's PID 1 that was entered.
  returned: when the command ran
  type: int
cmd:
  description: The command as a human would type it.
  returned: always
  type: str
commands:
  description: The hand command this stands for (C(nsenter --target PID --all ...)).
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.container import exec_in
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import PlanError, render
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS, fail_unless_root
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            command=dict(type="list", elements="str", required=True),
            chdir=dict(type="str"),
            env=dict(type="dict"),
            stdin=dict(type="str"),
            timeout=dict(type="int"),
            report_changed=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    cmd = render(p["command"] or [])
    fail_unless_root(module, cmd=cmd, commands=[])
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, cmd=cmd, commands=[],
                         msg="container_exec does not run commands in check mode")
    try:
        result = exec_in(p["state_dir"], p["name"], p["command"], chdir=p["chdir"], env=p["env"],
                         timeout=p["timeout"], stdin=p["stdin"])
    except InvalidInput as exc:
        module.fail_json(msg=str(exc), param=exc.param, cmd=cmd, commands=[])
    except PlanError as exc:
        module.fail_json(msg=str(exc), cmd=cmd, commands=[])
    except Exception as exc:
        module.fail_json(msg=str(exc), cmd=cmd, commands=[], exception=traceback.format_exc())
    result.update(changed=p["report_changed"],
                  commands=["nsenter --target %d --all -- %s" % (result["pid"], cmd)],
                  stdout_lines=result["stdout"].splitlines(),
                  stderr_lines=result["stderr"].splitlines())
    if result["timed_out"]:
        module.fail_json(msg="%s timed out after %ss" % (cmd, p["timeout"]), **result)
    if result["rc"] != 0:
        module.fail_json(msg="non-zero return code", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
