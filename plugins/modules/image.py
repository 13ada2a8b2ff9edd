#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Build a root filesystem image - a read-only lower layer for overlay_mount
version_added: 0.1.0
description:
  - Builds the directory tree a container uses as its read-only lower layer, under
    O(images_dir)C(/<name>/), atomically and idempotently.
  - Layout - C(<name>/<source>-<digest>/rootfs/) is the lower dir and C(manifest.json) next to it
    says what was built from what; C(<name>/current) is a symlink to the current version.
  - The digest covers the whole source declaration (the busybox and init binaries' sha256, the
    tarball's checksum, the debootstrap suite, mirror and packages, ...). Declaring the same
    source again is a no-op; a changed source builds a new version beside the old one and
    switches C(current) to it. Overlays mounted on an old version keep it (it is never modified
    or removed while in use).
  - A build happens in C(<name>/.build-<version>/) and appears by rename(2) only when complete;
    C(current) is replaced by renaming a new symlink over it. A failed build is removed.
  - O(source=busybox) (the default) needs no network - Debian's C(busybox-static) binary, a
    symlink for every applet (C(busybox --list-full)), C(/etc/passwd), C(/etc/group),
    C(/etc/hostname), C(/etc/hosts), C(/etc/resolv.conf) and the directories C(proc), C(sys),
    C(dev), C(tmp), C(run), C(etc), C(root); plus C(/sbin/tini) from C(tini-static) when the host
    has it, as an init that reaps zombies and forwards signals.
  - O(source=tarball) unpacks a local file or a downloaded URL (for example an Alpine
    minirootfs) after checking it against the required O(checksum).
  - O(source=debootstrap) installs a Debian O(suite) from O(mirror) (default - the archive in this
    host's apt sources), for containers that need Python so Ansible can manage them. Takes
    about a minute or more.
options:
  name:
    description: Image name, the directory under O(images_dir) (letters, digits, C(_), C(.), C(-)).
    type: str
    required: true
  source:
    description: What the image is built from.
    type: str
    choices: [busybox, tarball, debootstrap]
    default: busybox
  images_dir:
    description: Directory holding every image, owned by the collection.
    type: path
    default: /var/lib/handbuilt/images
  state:
    description:
      - V(present) builds the image (when its current version differs from the source).
      - V(absent) deletes the image with every version; fails while an overlay mount uses one.
    type: str
    choices: [present, absent]
    default: present
  tarball:
    description: With O(source=tarball), a local path or an C(http://), C(https://) or C(ftp://) URL.
    type: str
  checksum:
    description:
      - Required with O(source=tarball) - C(sha256:<hex>) (or C(sha384:), C(sha512:)).
      - A mismatch fails the task and leaves no image behind.
    type: str
  busybox:
    description: With O(source=busybox), the static busybox binary to copy.
    type: path
    default: /bin/busybox
  init:
    description:
      - With O(source=busybox), a static init copied to C(/sbin/tini) in the image.
      - Default - C(/usr/bin/tini-static) when it exists (Debian C(tini)), else none.
    type: path
  hostname:
    description: With O(source=busybox), the content of C(/etc/hostname). Default - the image name.
    type: str
  nameservers:
    description:
      - With O(source=busybox), the nameservers in C(/etc/resolv.conf).
      - Default - the host's upstream ones (C(/run/systemd/resolve/resolv.conf) or
        C(/etc/resolv.conf)), without loopback addresses, which a container cannot reach.
    type: list
    elements: str
  suite:
    description: With O(source=debootstrap), the Debian suite.
    type: str
    default: bookworm
  mirror:
    description: With O(source=debootstrap), the archive URL. Default - the one in this host's apt sources.
    type: str
  variant:
    description: With O(source=debootstrap), the debootstrap variant.
    type: str
    default: minbase
  include:
    description: With O(source=debootstrap), extra packages, for example C(python3).
    type: list
    elements: str
  prune:
    description: Delete the versions other than the current one that no overlay mount uses.
    type: bool
    default: false
  timeout:
    description: Seconds a C(tar) or C(debootstrap) step may take.
    type: int
    default: 1800
extends_documentation_fragment:
  - handbuilt.containers.common
  - handbuilt.containers.common.FORCE
notes:
  - O(force) here means deleting an image directory that holds entries the collection did not
    build.
  - The module takes the host lock in O(state_dir), so two builds never race.
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The busybox image (no network needed)
  handbuilt.containers.image:
    name: busybox
  register: busybox_image

- name: Its lower dir, for overlay_mount
  ansible.builtin.debug:
    msg: "{{ busybox_image.rootfs }}"

- name: Alpine's minirootfs
  handbuilt.containers.image:
    name: alpine
    source: tarball
    tarball: https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/x86_64/alpine-minirootfs-3.20.3-x86_64.tar.gz
    checksum: "sha256:{{ alpine_minirootfs_sha256 }}"  # published next to the tarball

- name: Debian with Python, so Ansible can manage the container
  handbuilt.containers.image:
    name: debian
    source: debootstrap
    suite: bookworm
    include: [python3]
"""

RETURN = r"""
rootfs:
  description:
    - The current version's lower dir (a fixed, versioned path - pass it to overlay_mount's
      O(handbuilt.containers.overlay_mount#module:lower)); null when absent.
  returned: always
  type: str
  sample: /var/lib/handbuilt/images/busybox/busybox-1f2e3d4c5b6a7980/rootfs
image:
  description: The image after the run; null when absent.
  returned: always
  type: dict
  sample: {"name": "busybox", "version": "busybox-1f2e3d4c5b6a7980",
           "rootfs": "/var/lib/handbuilt/images/busybox/busybox-1f2e3d4c5b6a7980/rootfs",
           "path": "/var/lib/handbuilt/images/busybox/busybox-1f2e3d4c5b6a7980",
           "current": "/var/lib/handbuilt/images/busybox/current/rootfs",
           "digest": "sha256:1f2e3d4c5b6a7980...", "source": "busybox", "init": "/sbin/tini",
           "versions": ["busybox-1f2e3d4c5b6a7980"], "manifest": {}}
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.image import Image
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    COMMON_ARGS,
    run_module,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            source=dict(type="str", default="busybox", choices=["busybox", "tarball", "debootstrap"]),
            images_dir=dict(type="path", default="/var/lib/handbuilt/images"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            tarball=dict(type="str"),
            checksum=dict(type="str"),
            busybox=dict(type="path", default="/bin/busybox"),
            init=dict(type="path"),
            hostname=dict(type="str"),
            nameservers=dict(type="list", elements="str"),
            suite=dict(type="str", default="bookworm"),
            mirror=dict(type="str"),
            variant=dict(type="str", default="minbase"),
            include=dict(type="list", elements="str"),
            prune=dict(type="bool", default=False),
            timeout=dict(type="int", default=1800),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda p: Image(
        p["name"], source=p["source"], images_dir=p["images_dir"], state=p["state"],
        tarball=p["tarball"], checksum=p["checksum"], busybox=p["busybox"], init=p["init"],
        hostname=p["hostname"], nameservers=p["nameservers"], suite=p["suite"],
        mirror=p["mirror"], variant=p["variant"], include=p["include"], prune=p["prune"],
        force=p["force"], check_mode=module.check_mode, timeout=p["timeout"]))


if __name__ == "__main__":
    main()
