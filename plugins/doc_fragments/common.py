# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options and attributes every handbuilt.containers module shares."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  state_dir:
    description:
      - Directory for the collection's runtime state (ownership markers, address allocations, container state).
      - It lives under C(/run) so it vanishes on reboot, like namespaces and cgroups do.
    type: path
    default: /run/handbuilt
attributes:
  check_mode:
    support: full
    description: Nothing changes; C(changed) and C(commands) predict the real run.
  diff_mode:
    support: full
    description: Shows the resource before and after.
notes:
  - Every module returns C(commands), the hand commands its plan stands for, in check mode too.
  - "Runs as root (C(become: true) for a sudo user). A module that changes the host, run as another user, stops before it reads anything, saying so."
"""

    NETLINK = r"""
options: {}
requirements:
  - pyroute2 0.7 or later (Debian 12 C(python3-pyroute2) or PyPI)
notes:
  - Talks netlink in-process through pyroute2; no C(ip) subprocess is started. C(commands) shows the
    equivalent C(ip) commands.
"""

    FORCE = r"""
options:
  force:
    description:
      - With O(state=absent), delete the object even though it lacks the collection's ownership
        mark (it was not created by C(handbuilt.containers)).
      - Without it, such an object is refused with an error and left untouched.
    type: bool
    default: false
"""
