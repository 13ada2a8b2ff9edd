# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read -> plan -> apply cycle every primitive follows, and module glue.

A Resource reads the kernel (``read``), compares it with the declaration and
returns a list of Ops (``plan``), and describes itself for ``--diff``
(``view``). ``converge`` ties that together with check mode, so a module file
is only its argument spec, its documentation and a call to ``run_module``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import traceback

from ansible_collections.handbuilt.containers.plugins.module_utils.plan import (
    PlanError,
    apply_plan,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import (
    InvalidInput,
)

DEFAULT_STATE_DIR = "/run/handbuilt"

# Options every module shares (documented in the doc fragment ``common``).
COMMON_ARGS = dict(
    state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
)


def not_root_message(euid):
    """Why a module stops when it does not run as root, and what to do (None as root)."""
    if euid == 0:
        return None
    return ("handbuilt.containers modules run as root: they enter and change namespaces, links, "
            "cgroups, mounts and firewall rules, and this one runs as uid %d. Connect as root, or "
            "set become: true (for a sudo user, ansible_become=true in the inventory)." % euid)


def fail_unless_root(module, **result):
    """Stop the module (with ``result``) before it reads anything, unless it runs as root."""
    message = not_root_message(os.geteuid())
    if message:
        module.fail_json(msg=message, **result)


class Resource:
    """Base of every model: subclasses fill ``read``, ``plan`` and ``view``."""

    needs_root = True  # False for the models that only read what any user may read

    def __init__(self):
        self.warnings = []
        self.adopted = False

    def read(self):
        raise NotImplementedError

    def plan(self, current):
        """Return the list of Ops that takes ``current`` to the declaration."""
        raise NotImplementedError

    def view(self, current):
        """What --diff shows of a state (a small dict, or {'state': 'absent'})."""
        raise NotImplementedError

    def predict(self, before):
        """The view after a successful run, for check mode."""
        raise NotImplementedError

    def facts(self, current):
        """Extra return values describing the resulting resource."""
        return {}

    def describe_error(self, exc):
        return str(exc)

    def writing(self):
        """Called before a plan is applied: what was read may now be out of date."""

    def converge(self, check_mode):
        current = self.read()
        ops = self.plan(current)
        before = self.view(current)
        if ops and not check_mode:
            self.writing()
        commands = apply_plan(ops, check_mode, self.describe_error)
        if ops and not check_mode:
            current = self.read()
            after = self.view(current)
        else:
            after = self.predict(before) if ops else before
        result = dict(changed=bool(ops), commands=commands,
                      diff=dict(before=before, after=after))
        if self.adopted:
            result["adopted"] = True
        result.update(self.facts(current))
        return result


def wait_until(predicate, timeout, interval=0.001, longest=0.2):
    """Poll ``predicate`` until true (True) or ``timeout`` seconds pass (False): from 1 ms
    (a process that takes a signal, a link the kernel is removing, is usually gone within
    a few) backing off to ``longest``."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 2, longest)


LOCK_DIR = "/run/lock"  # the FHS place for lock files (a tmpfs on Debian)


@contextlib.contextmanager
def host_lock(state_dir):
    """One lock per host, so two plays never converge the same objects at once.

    The lock file lives in /run/lock, not in the state dir, so a run that
    changes nothing leaves no state dir behind (teardown stays idempotent).
    """
    lock_dir = LOCK_DIR if os.path.isdir(LOCK_DIR) else state_dir
    os.makedirs(lock_dir, 0o755, exist_ok=True)
    fd = os.open(os.path.join(lock_dir, "handbuilt.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_file(path, top):
    """Remove a state file, then its directories up to ``top`` once they are empty."""
    os.unlink(path)
    parent = os.path.dirname(path)
    while parent.startswith(top.rstrip("/") + "/"):
        try:
            os.rmdir(parent)
        except OSError:
            return  # not empty: other objects' state lives there
        parent = os.path.dirname(parent)


def run_module(module, build, cleanup=None, lock=True):
    """Build the resource from the params, converge it and exit the module.

    ``build(params)`` returns a Resource (or raises InvalidInput); bad input
    fails before anything on the host is read or written.
    """
    resource = None
    try:
        resource = build(module.params)
        if getattr(resource, "needs_root", True):
            fail_unless_root(module)
        if lock and not module.check_mode:
            with host_lock(module.params["state_dir"]):
                result = resource.converge(module.check_mode)
        else:
            result = resource.converge(module.check_mode)
    except InvalidInput as exc:
        module.fail_json(msg=str(exc), param=exc.param)
    except PlanError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # a kernel error while reading: say it plainly
        describe = resource.describe_error if resource is not None else str
        module.fail_json(msg=describe(exc), exception=traceback.format_exc())
    finally:
        if cleanup is not None:
            cleanup()
    for warning in resource.warnings:
        module.warn(warning)
    if not module._diff:
        # Ansible shows a diff only with --diff; without it, don't ship one (compose's
        # for 50 new containers is ~100 kB the controller would parse for nothing).
        result.pop("diff", None)
    module.exit_json(**result)
