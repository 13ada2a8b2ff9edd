# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: wall time of every task, and the recap, as JSON lines."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Time every task into the file in HANDBUILT_BENCH_TIMER (bench/ only)
description: Writes one JSON object per task (name, action, seconds, items) and the play recap.
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._task = None
        self._start = None
        self._items = 0
        self._status = None
        self._t0 = time.time()

    def _write(self, entry):
        path = os.environ.get("HANDBUILT_BENCH_TIMER")
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps(entry, default=str) + "\n")

    def _flush(self):
        if self._task is not None:
            self._write({"kind": "task", "task": self._task.get_name(), "action": self._task.action,
                         "seconds": time.time() - self._start, "items": self._items,
                         "status": self._status})
        self._task = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._flush()
        self._task, self._start, self._items, self._status = task, time.time(), 0, None

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _seen(self, status):
        if self._status in (None, "ok", "skipped") or status == "failed":
            self._status = status

    def v2_runner_on_ok(self, result):
        self._seen("changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._seen("failed")

    def v2_runner_on_skipped(self, result):
        self._seen("skipped")

    def v2_runner_item_on_ok(self, result):
        self._items += 1

    def v2_runner_item_on_failed(self, result):
        self._items += 1

    def v2_runner_item_on_skipped(self, result):
        self._items += 1

    def v2_playbook_on_stats(self, stats):
        self._flush()
        self._write({"kind": "stats", "seconds": time.time() - self._t0,
                     "hosts": {h: stats.summarize(h) for h in stats.processed}})
