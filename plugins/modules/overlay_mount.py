#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_mount
short_description: Mount an overlayfs - read-only image layers plus a container's own writable layer
version_added: 0.1.0
description:
  - Mounts O(lower) (read-only layers, top first) with the writable O(upper) and its scratch dir
    O(work) on O(path), the C(merged) view a container uses as its root filesystem, as the seed
    labs do with C(mount -t overlay overlay -o lowerdir=...,upperdir=...,workdir=... merged).
  - Idempotent - the mount is read back from C(/proc/self/mountinfo) (its C(lowerdir=),
    C(upperdir=) and C(workdir=) super options, unescaped) and compared with the declaration.
    Paths are compared after resolving symlinks, as the kernel resolves them when mounting;
    the module always mounts the resolved paths.
  - A mount with other layers is remounted, but only when nothing uses it - no other mount
    namespace holds the same overlay (a container that pivot_root-ed into it), it is not mounted
    elsewhere too, nothing is mounted beneath it, and a plain C(umount) (never a lazy one)
    succeeds. Otherwise the task fails with the users it found and changes nothing.
  - Missing O(upper), O(work) and O(path) directories are created, and recorded in
    O(state_dir)C(/overlay/); O(state=absent) unmounts and removes only the directories recorded
    there (the upper layer with everything written to it, the work dir, the mount point and any
    parents it created). Directories that existed before are left in place.
  - A mount not made by the collection (no record) with the declared layers is adopted by
    O(state=mounted) (with a warning); O(state=unmounted) and O(state=absent) refuse to unmount it
    unless O(force=true).
  - In check mode a missing O(lower) directory is a warning (an earlier task, such as
    M(handbuilt.containers.image), would create it); in a real run it is an error.
options:
  path:
    description:
      - The mount point, the C(merged) view. Created when missing.
      - Must not be C(/) or a system directory (C(/usr), C(/etc), C(/var), C(/run), C(/tmp), ...).
    type: path
    required: true
  lower:
    description:
      - Read-only layers, top layer first (the kernel's C(lowerdir) order). Each must exist.
      - They must not contain, nor lie inside, O(path), O(upper) or O(work).
      - Required with O(state=mounted).
    type: list
    elements: path
  upper:
    description:
      - The writable layer; every change made in O(path) lands here. Created when missing.
      - Required with O(state=mounted). With O(state=absent) it is only informative; the
        directories removed are the ones the collection recorded as created.
    type: path
  work:
    description:
      - overlayfs's scratch directory; on the same filesystem as O(upper), and neither may lie
        inside the other. Created when missing. Required with O(state=mounted).
    type: path
  state:
    description:
      - V(mounted) - mounted with exactly these layers.
      - V(unmounted) - not mounted; directories are kept (the upper layer keeps the writes).
      - V(absent) - not mounted, and the directories the collection created are removed.
    type: str
    choices: [mounted, unmounted, absent]
    default: mounted
extends_documentation_fragment:
  - handbuilt.containers.common
  - handbuilt.containers.common.FORCE
notes:
  - Mounts with mount(2) through ctypes and unmounts with umount2(2) without C(MNT_DETACH).
  - The records live under O(state_dir), which is on C(/run) and vanishes on reboot; after a
    reboot the old upper layer is no longer known as created by the collection and O(state=absent)
    leaves it in place.
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Root filesystem of the web container - the busybox image plus its own writable layer
  handbuilt.containers.overlay_mount:
    path: /var/lib/handbuilt/containers/web/merged
    lower: ["{{ busybox_image.rootfs }}"]
    upper: /var/lib/handbuilt/containers/web/upper
    work: /var/lib/handbuilt/containers/web/work

- name: Two image layers, the top one first
  handbuilt.containers.overlay_mount:
    path: /srv/app/merged
    lower: [/srv/layers/app, /srv/layers/base]
    upper: /srv/app/upper
    work: /srv/app/work

- name: Unmount it, keeping what the container wrote
  handbuilt.containers.overlay_mount:
    path: /var/lib/handbuilt/containers/web/merged
    state: unmounted

- name: Remove it, with the upper, work and mount point directories it created
  handbuilt.containers.overlay_mount:
    path: /var/lib/handbuilt/containers/web/merged
    state: absent
"""

RETURN = r"""
overlay:
  description: The overlay mounted on O(path) after the run, as mountinfo reports it; null when none.
  returned: always
  type: dict
  sample: {"path": "/var/lib/handbuilt/containers/web/merged",
           "lower": ["/var/lib/handbuilt/images/busybox/sha256-1f2e3d4c5b6a7980/rootfs"],
           "upper": "/var/lib/handbuilt/containers/web/upper",
           "work": "/var/lib/handbuilt/containers/web/work",
           "device": "0:52", "mount_id": 412, "owned": true}
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
  sample: ["mkdir -p /srv/app/upper", "mkdir -p /srv/app/work", "mkdir -p /srv/app/merged",
           "mount -t overlay overlay -o lowerdir=/srv/layers/app:/srv/layers/base,upperdir=/srv/app/upper,workdir=/srv/app/work /srv/app/merged"]
adopted:
  description: True when a mount the collection had not made was adopted.
  returned: when adopted
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.overlay import OverlayMount
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    COMMON_ARGS,
    run_module,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            path=dict(type="path", required=True),
            lower=dict(type="list", elements="path"),
            upper=dict(type="path"),
            work=dict(type="path"),
            state=dict(type="str", default="mounted", choices=["mounted", "unmounted", "absent"]),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "mounted", ["lower", "upper", "work"])],
        supports_check_mode=True,
    )
    run_module(module, lambda p: OverlayMount(
        p["path"], lower=p["lower"], upper=p["upper"], work=p["work"], state=p["state"],
        state_dir=p["state_dir"], force=p["force"], check_mode=module.check_mode))


if __name__ == "__main__":
    main()
