# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: writes each task result and the recap as JSON lines."""

from __future__ import annotations

DOCUMENTATION = r"""
name: record
type: aggregate
short_description: Record task results to the file in HANDBUILT_RECORD (tests only)
description: Writes one JSON object per task result, and the play recap, for the test suite.
options: {}
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, entry):
        path = os.environ.get("HANDBUILT_RECORD")
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps(entry, default=str) + "\n")

    def _result(self, result, status):
        self._write({"kind": "task", "status": status, "host": result._host.get_name(),
                     "task": result._task.get_name(), "action": result._task.action,
                     "result": dict(result._result, failed=status.endswith("failed"))})

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_item_on_ok(self, result):
        self._result(result, "item_ok")

    def v2_runner_item_on_failed(self, result):
        self._result(result, "item_failed")

    def v2_playbook_on_stats(self, stats):
        self._write({"kind": "stats", "hosts": {h: stats.summarize(h) for h in stats.processed}})
