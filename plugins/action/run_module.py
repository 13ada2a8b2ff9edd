# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action behind every module of the collection (meta/runtime.yml routes them here).

It is Ansible's ``normal`` action - the module runs on the target exactly as
without it - plus a payload cache kept across runs (plugin_utils/payload_cache.py),
which saves rebuilding each module's AnsiballZ payload on every playbook run.
"""

from __future__ import annotations

import os

import ansible.module_utils
from ansible import constants as C
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.release import __version__ as ansible_version
from ansible.utils.display import Display

from ansible_collections.handbuilt.containers.plugins.plugin_utils import payload_cache

display = Display()

PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = "handbuilt.containers"
# Where the payload's sources live: Ansible's module_utils and the collection's.
SOURCE_DIRS = (os.path.dirname(os.path.abspath(ansible.module_utils.__file__)),
               os.path.join(PLUGINS, "module_utils"))


class ActionModule(NormalAction):

    def _configure_module(self, module_name, module_args, task_vars):
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
        return built
