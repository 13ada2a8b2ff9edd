# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action behind every module of the collection (meta/runtime.yml routes them here).

It is Ansible's ``normal`` action - the module runs on the target exactly as
without it - plus a payload cache kept across runs (plugin_utils/payload_cache.py),
which saves rebuilding each module's AnsiballZ payload on every playbook run, and,
for the local connection, bytecode in the payload (plugin_utils/bytecode.py), which
saves the target compiling it on every module run. With pipelining, it has the
interpreter read the module from its stdin in one go and run it (``STDIN_RUNNER``),
however its environment sets stdin's buffering.
"""

from __future__ import annotations

import dataclasses
import os
import shlex

import ansible.module_utils
from ansible import constants as C
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.release import __version__ as ansible_version
from ansible.utils.display import Display

from ansible_collections.handbuilt.containers.plugins.plugin_utils import bytecode, payload_cache

display = Display()

PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = "handbuilt.containers"
# Where the payload's sources live: Ansible's module_utils and the collection's.
SOURCE_DIRS = (os.path.dirname(os.path.abspath(ansible.module_utils.__file__)),
               os.path.join(PLUGINS, "module_utils"))


# With pipelining the module reaches its interpreter on stdin. Where PYTHONUNBUFFERED is
# set (CI machines, many container images; the local connection passes it on), Python
# reads a script from stdin with one read(2) per byte: 0.3 s for compose's 1 MB payload
# with bytecode, against 0.02 s from a file (docs/performance.md). So the interpreter is
# given this to run instead, which reads stdin at once and runs it as Python would have
# (as __main__ from "<stdin>"; only sys.argv differs, ['-c'] instead of ['-']).
STDIN_RUNNER = '__file__="<stdin>";import sys;exec(compile(sys.stdin.buffer.read(),__file__,"exec"))'


def ansiballz_module(built):
    """``(module_data, interpreter, with_data)`` of what ``_configure_module`` built, when it
    is an AnsiballZ module for a plain ``#!/path/python`` - else None (a script module, an
    ``env`` shebang, a shape this code does not know). ``with_data(data)`` is ``built``
    carrying other module data. ansible-core 2.19+ builds ``(module bits, path)``, 2.16-2.18
    ``(style, shebang, data, path)``."""
    if not isinstance(built, tuple):
        return None
    if len(built) == 2 and dataclasses.is_dataclass(built[0]):
        bits = built[0]
        style, shebang, data = bits.module_style, bits.shebang, bits.b_module_data

        def with_data(other):
            return (dataclasses.replace(bits, b_module_data=other),) + built[1:]
    elif len(built) == 4 and isinstance(built[2], bytes):
        style, shebang, data = built[:3]

        def with_data(other):
            return built[:2] + (other,) + built[3:]
    else:
        return None
    interpreter = bytecode.interpreter_of(shebang) if style == "new" else None
    return (data, interpreter, with_data) if interpreter is not None else None


class ActionModule(NormalAction):

    _stdin_module = None  # (payload, interpreter) of the module being run

    def _low_level_execute_command(self, cmd, *args, **kwargs):
        module = self._stdin_module
        if (module is not None and kwargs.get("in_data") is module[0]
                and isinstance(cmd, str) and cmd.rstrip().endswith(module[1])):
            # The module's own run, piped: its command ends with the bare interpreter.
            cmd = "%s -c %s" % (cmd.rstrip(), shlex.quote(STDIN_RUNNER))
        return super()._low_level_execute_command(cmd, *args, **kwargs)

    def _configure_module(self, module_name, module_args, task_vars):
        built = self._configure_our_module(module_name, module_args, task_vars)
        module = ansiballz_module(built)
        self._stdin_module = module[:2] if module else None
        return built

    def _configure_our_module(self, module_name, module_args, task_vars):
        leaf = module_name.rsplit(".", 1)[-1]
        module_path = os.path.join(PLUGINS, "modules", leaf + ".py")
        root = payload_cache.default_root()
        if (root is None or module_name not in (leaf, "%s.%s" % (COLLECTION, leaf))
                or not os.path.exists(module_path)):
            # Not one of ours (an async wrapper, say), or the cache is off.
            return super()._configure_module(module_name, module_args, task_vars)
        run_cache = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
        entry = None
        try:
            if payload_cache.usable(root):
                entry = payload_cache.key(leaf, module_path, SOURCE_DIRS, ansible_version)
                if payload_cache.restore(root, entry, run_cache):
                    display.vvv("handbuilt payload cache: %s restored from %s" % (leaf, root))
            else:
                display.vvv("handbuilt payload cache: %s is not a private directory, not used" % root)
        except OSError as exc:
            display.vvv("handbuilt payload cache: not used (%s)" % exc)
            entry = None
        built = super()._configure_module(module_name, module_args, task_vars)
        if entry is not None:
            prefix = "ansible_collections.%s.plugins.modules.%s-" % (COLLECTION, leaf)
            try:
                if payload_cache.save(root, entry, run_cache, prefix):
                    display.vvv("handbuilt payload cache: %s saved in %s" % (leaf, root))
            except OSError as exc:
                display.vvv("handbuilt payload cache: not saved (%s)" % exc)
            built = self._with_bytecode(built, module_name, entry.rsplit("-", 1)[0], root)
        return built

    def _with_bytecode(self, built, module_name, name, root):
        """``built`` with the target's bytecode in its payload, where it can be made and pays."""
        module = ansiballz_module(built)
        if module is None or getattr(self._connection, "transport", None) != "local":
            return built  # not an AnsiballZ module, or its interpreter is not on this machine
        module_data, interpreter, with_data = module
        cache = os.path.join(root, "bytecode")
        try:
            if not payload_cache.usable(cache):
                return built
            zip_data = bytecode.zip_data_of(module_data)
            data, made = bytecode.cached_zip_data(cache, name, zip_data, interpreter, module_name)
        except (OSError, bytecode.BytecodeError) as exc:
            display.vvv("handbuilt bytecode: %s runs from source (%s)" % (name, exc))
            return built
        display.vvv("handbuilt bytecode: %s for %s %s %s" % (
            name, interpreter, "made in" if made else "read from", cache))
        return with_data(bytecode.with_zip_data(module_data, data))
