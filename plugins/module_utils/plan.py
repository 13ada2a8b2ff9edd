# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans: what a module is about to do, as a list of operations.

Every model in this collection reads the kernel, compares it with the declared
state and returns a plan. Each operation carries the hand command it stands
for (``ip link set veth1-br master br0``), so check mode, ``--diff`` and
learners all see the same truth, and a failure names the exact step.
"""

from __future__ import annotations


class PlanError(Exception):
    """A declared state that cannot be reached; the message is for the user."""


class Op:
    """One step of a plan: a hand command to show and a callable to run it."""

    __slots__ = ("command", "_fn", "_args", "_kwargs")

    def __init__(self, command, fn, *args, **kwargs):
        self.command = command
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def apply(self):
        return self._fn(*self._args, **self._kwargs)

    def __repr__(self):
        return "Op(%r)" % self.command

    def __str__(self):
        return self.command


def apply_plan(ops, check_mode, describe_error=str):
    """Run ``ops`` in order unless in check mode; returns the commands.

    A failing step raises PlanError naming the step and what already ran, so
    the user can see exactly how far the host got.
    """
    commands = [op.command for op in ops]
    if check_mode:
        return commands
    for done, op in enumerate(ops):
        try:
            op.apply()
        except PlanError:
            raise
        except Exception as exc:  # kernel and OS errors, translated once here
            raise PlanError(
                "%s failed: %s (steps already applied: %s)"
                % (op.command, describe_error(exc), commands[:done] or "none")
            )
    return commands


def shell_quote(word):
    """Quote one argv word for display only (nothing here reaches a shell)."""
    word = str(word)
    if word and all(c.isalnum() or c in "@%+=:,./-_" for c in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def render(argv):
    """Render an argv list as the command a human would type."""
    return " ".join(shell_quote(w) for w in argv)
