# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection plugin: run tasks inside a handbuilt.containers container."""

from __future__ import annotations

DOCUMENTATION = r"""
name: nsenter
short_description: Run tasks inside a container started by handbuilt.containers.container
version_added: 0.1.0
description:
  - Targets a container of M(handbuilt.containers.container) on the machine Ansible runs on, as an
    inventory host - like C(community.docker.docker), without a daemon. Set
    C(ansible_connection=handbuilt.containers.nsenter) and C(ansible_host) to the container's name.
  - The container's pid comes from its state file, C(<state_dir>/containers/<name>/state.json), and
    is checked against the recorded start time (field 22 of C(/proc/<pid>/stat)) before every
    command, so a reused pid is never entered.
  - Commands run as C(nsenter --target <pid> --all -r -w -- /bin/sh -c <cmd>) (an argv list; the
    command line is interpreted by the container's own shell), in the container's environment and
    after joining each of its cgroups. They keep root's capabilities in the container's namespaces
    (like C(docker exec --privileged)); use M(handbuilt.containers.container_exec) for the
    container's declared capability set.
  - C(raw) always works (the rootfs needs a C(/bin/sh)); full modules need Python in the rootfs.
  - Files are copied through C(/proc/<pid>/root/...), resolving every symlink inside the
    container's root (an absolute symlink in the container never leads to a host path).
author:
  - handbuilt.containers developers (!UNKNOWN)
options:
  remote_addr:
    description: Name of the container.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_nsenter_container
  state_dir:
    description: The collection's state directory (the C(state_dir) the container was started with).
    type: path
    default: /run/handbuilt
    vars:
      - name: ansible_handbuilt_state_dir
    env:
      - name: HANDBUILT_STATE_DIR
  nsenter_path:
    description: The util-linux C(nsenter) binary on the controller (a name is looked up in C(PATH)).
    type: str
    default: nsenter
    vars:
      - name: ansible_nsenter_path
  executable:
    description: Shell inside the container that runs Ansible's command lines.
    type: str
    default: /bin/sh
    vars:
      - name: ansible_nsenter_executable
extends_documentation_fragment:
  - connection_pipelining
notes:
  - Runs on the controller as root; the container must run on the same machine.
"""

EXAMPLES = r"""
# inventory.yml
# containers:
#   hosts:
#     web:
#       ansible_connection: handbuilt.containers.nsenter
#       ansible_host: web          # the container's name

- name: Look inside the web container
  hosts: containers
  gather_facts: false
  tasks:
    - name: Ask the container's own busybox
      ansible.builtin.raw: hostname; cat /proc/1/cmdline
      changed_when: false
"""

import collections
import errno
import json
import os
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

MAX_SYMLINKS = 40


def proc_starttime(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            data = fh.read()
    except OSError:
        return None, None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def resolve_in_root(root, path):
    """``path`` inside the container, as a host path under ``root`` (``/proc/<pid>/root``).

    Symlinks are resolved by hand against the container's root: the kernel
    would resolve an absolute link target against the caller's root, the host.
    """
    parts = collections.deque(p for p in path.split("/") if p)
    resolved = []
    hops = 0
    while parts:
        part = parts.popleft()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts.extendleft(reversed([p for p in target.split("/") if p]))
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


class Connection(ConnectionBase):
    """Enter a handbuilt.containers container with nsenter."""

    transport = "handbuilt.containers.nsenter"
    has_pipelining = True
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._name = None

    # --- the container -------------------------------------------------------
    def _container(self):
        """(pid, config) of the running container, checked against /proc."""
        name = self._name
        cdir = os.path.join(self.get_option("state_dir"), "containers", name)
        try:
            with open(os.path.join(cdir, "state.json")) as fh:
                state = json.load(fh)
            with open(os.path.join(cdir, "config.json")) as fh:
                config = json.load(fh)
        except (OSError, ValueError) as exc:
            raise AnsibleConnectionFailure(
                "container %s is not recorded under %s (%s)" % (name, cdir, exc))
        pid = state.get("pid")
        letter, starttime = proc_starttime(pid) if pid else (None, None)
        if starttime is None or starttime != state.get("starttime") or letter in ("Z", "X"):
            raise AnsibleConnectionFailure("container %s is not running" % name)
        return pid, config

    def _connect(self):
        if not self._connected:
            self._name = self.get_option("remote_addr") or self._play_context.remote_addr
            if not self._name or "/" in self._name or self._name in (".", ".."):
                raise AnsibleConnectionFailure("invalid container name %r" % self._name)
            pid, dummy = self._container()
            display.vvv("ESTABLISH NSENTER CONNECTION TO CONTAINER %s (pid %d)" % (self._name, pid),
                        host=self._name)
            self._connected = True
        return self

    # --- commands --------------------------------------------------------------
    def _nsenter(self):
        path = self.get_option("nsenter_path")
        if "/" not in path:
            path = shutil.which(path) or shutil.which(path, path="/usr/bin:/bin:/usr/sbin:/sbin")
            if not path:
                raise AnsibleConnectionFailure("nsenter (util-linux) not found on the controller")
        return path

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        pid, config = self._container()
        argv = [self._nsenter(), "--target", str(pid), "--all", "-r", "-w", "--",
                self.get_option("executable"), "-c", to_text(cmd)]
        display.vvv("EXEC %s" % argv, host=self._name)
        cgroup_fds = []
        try:
            for directory in config.get("cgroups", []):
                cgroup_fds.append(os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY))
        except OSError as exc:
            for fd in cgroup_fds:
                os.close(fd)
            raise AnsibleConnectionFailure("cannot join the container's cgroup: %s" % exc)

        def join_cgroups():  # in the child, before nsenter runs: "0" means the writer
            for fd in cgroup_fds:
                os.write(fd, b"0")

        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=dict(config.get("env") or {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}),
                preexec_fn=join_cgroups, cwd="/")
        except OSError as exc:
            raise AnsibleConnectionFailure("cannot run %s: %s" % (argv[0], exc))
        finally:
            for fd in cgroup_fds:
                os.close(fd)
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    # --- files -----------------------------------------------------------------
    def _host_path(self, path):
        pid, dummy = self._container()
        root = "/proc/%d/root" % pid
        if not path.startswith("/"):
            path = "/" + path
        return resolve_in_root(root, path)

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._name)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        try:
            target = self._host_path(out_path)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as src, \
                    os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except OSError as exc:
            raise AnsibleError("failed to transfer %s to %s in container %s: %s"
                               % (in_path, out_path, self._name, exc))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._name)
        try:
            source = self._host_path(in_path)
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as src, \
                    open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as dst:
                shutil.copyfileobj(src, dst)
        except OSError as exc:
            raise AnsibleError("failed to fetch %s from container %s: %s"
                               % (in_path, self._name, exc))

    def reset(self):
        self.close()

    def close(self):
        self._connected = False
