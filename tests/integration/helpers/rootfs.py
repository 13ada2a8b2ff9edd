# -*- coding: utf-8 -*-
"""A minimal busybox root filesystem, built by hand from Debian's busybox-static.

What the seeds do with `docker export`, without Docker or the internet: one
static binary, a link per applet, and the few files in /etc a shell expects.
"""

from __future__ import annotations

import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
        "var", "run", "home")


def build_rootfs(path, hostname="handbuilt"):
    """Create a busybox rootfs at ``path`` (which must not exist yet); returns ``path``."""
    os.makedirs(path)
    for d in DIRS:
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:  # e.g. "bin/sh", "usr/bin/head"
        link = os.path.join(path, applet)
        if os.path.lexists(link):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/bin/busybox", link)
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        "etc/group": "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
        "etc/hostname": hostname + "\n",
        "etc/resolv.conf": "nameserver 127.0.0.1\n",
        "etc/hosts": "127.0.0.1 localhost\n",
    }
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as fh:
            fh.write(text)
    return path
