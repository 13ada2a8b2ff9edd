# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's whole declared stack in one module call, through the same models.

An Ansible task costs ~0.3 s; a container's kernel work ~5-20 ms. So the roles
converge everything in one call: the bridge and its NAT, the images, and every
container expanded into the primitives' resources (netns, veth, cgroup, overlay,
process), then the published ports - sharing one Netlink (one socket per
namespace, no forks) and one firewall host.
"""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.handbuilt.containers.plugins.module_utils import declaration, host, validate
from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import Bridge, Netns, Veth
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import Op, PlanError, apply_plan
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import remove_file, wait_until

PEER_NAME = "eth0"
PROCESS_WORKERS = 8  # containers started or stopped at once


class Ipam:
    """Host-local address allocation, like CNI's host-local plugin.

    A container keeps its address across runs: each allocation is a file
    ``<state_dir>/ipam/<bridge>/<container>`` holding the address.
    """

    def __init__(self, state_dir, bridge, subnet, gateway, pool=None):
        self.state_dir = state_dir
        self.dir = os.path.join(state_dir, "ipam", bridge)
        self.subnet, self.gateway = subnet, gateway
        self.pool = pool or subnet  # where automatic addresses come from
        self.records = {}
        if os.path.isdir(self.dir):
            for name in os.listdir(self.dir):
                with open(os.path.join(self.dir, name)) as fh:
                    self.records[name] = ipaddress.ip_address(fh.read().strip())

    def assign(self, containers):
        """The address of every container, and the Ops recording new ones."""
        taken = {ip: name for name, ip in self.records.items()}
        wanted = {}
        for spec in containers:
            if spec.get("address"):
                ip = ipaddress.ip_address(str(spec["address"]).partition("/")[0])
                holder = taken.get(ip)
                if holder is not None and holder != spec["name"] and holder not in \
                        [c["name"] for c in containers if not c.get("address")]:
                    raise PlanError("containers: %s is already allocated to container %s"
                                    % (ip, holder))
                wanted[spec["name"]] = ip
        used = set(wanted.values()) | {self.gateway}
        for spec in containers:
            name = spec["name"]
            if name in wanted:
                continue
            ip = self.records.get(name)
            if ip is None or ip not in self.pool or ip in used:
                ip = next((h for h in self.pool.hosts()
                           if h not in used and h not in taken), None)
                if ip is None:
                    raise PlanError("containers: %s has no free address for %s"
                                    % (self.pool, name))
            wanted[name] = ip
            used.add(ip)
        ops = [self.record_op(name, ip) for name, ip in wanted.items()
               if self.records.get(name) != ip]
        return wanted, ops

    def path(self, name):
        return os.path.join(self.dir, name)

    def record_op(self, name, ip):
        def write():
            os.makedirs(self.dir, 0o755, exist_ok=True)
            with open(self.path(name), "w") as fh:
                fh.write("%s\n" % ip)
        return Op("echo %s > %s" % (ip, self.path(name)), write)

    def release_op(self, name):
        if name not in self.records:
            return None
        return Op("rm -f %s" % self.path(name), remove_file, self.path(name), self.state_dir)


class Stack:
    """The bridge, its NAT, the images and every declared container, converged in one call.

    Built in that order (``state=absent`` removes in reverse, then the stack's
    directories once empty). A container with a ``command`` gets the full set -
    network namespace, veth, cgroup (when it has limits), an overlay rootfs on its
    image and the process; one without a command gets its network only (removed, it
    loses whatever an earlier run gave it, process and rootfs too). Published
    ports of every container are one port_forward resource (one firewall transaction).
    """

    def __init__(self, netlink, containers, network, state="present", images=None,
                 masquerade=False, state_dir="/run/handbuilt", data_dir="/var/lib/handbuilt",
                 cgroup_parent="handbuilt", cgroup_relative_to_pid=None, firewall_backend="auto",
                 force=False, check_mode=False):
        self.nl = netlink
        self.bridge, self.subnet, self.gateway = network.bridge, network.subnet, network.gateway
        declaration.check_containers(containers, network)
        declaration.check_images(images or [])
        self.containers = containers
        self.state, self.mtu, self.force = state, network.mtu, force
        self.state_dir, self.check_mode = state_dir, check_mode
        self.data_dir = validate.abspath("data_dir", data_dir, forbid=("/",))
        self.cgroup_parent, self.cgroup_pid = cgroup_parent, cgroup_relative_to_pid
        self.firewall_backend = firewall_backend
        self.ipam = Ipam(state_dir, self.bridge, self.subnet, self.gateway, network.pool)
        self.warnings = []
        self._layout = None
        self._firewall_host = None
        self.launcher = None  # container.Launcher, made with the first container that has a process
        # Allocate addresses (recorded only when applied) and build every resource
        # now: bad input anywhere fails before anything changes.
        if state == "present":
            self.addresses, self.ipam_ops = self.ipam.assign(containers)
        else:
            self.addresses, self.ipam_ops = {c["name"]: None for c in containers}, []
        self.network = [("bridge", Bridge(netlink, self.bridge, state=state, force=force,
                                          addresses=[network.gateway_cidr], mtu=self.mtu))]
        nat = self.masquerade(masquerade)
        if nat is not None:
            self.network.append(("masquerade", nat))
        self.images = [(spec["name"], self.image(spec)) for spec in images or []]
        self.plans = {spec["name"]: self.resources(spec, self.addresses[spec["name"]])
                      for spec in containers}
        self.ports = self.port_forward()

    def requirements(self):
        """Kernel features and cgroup controllers this declaration needs."""
        need = ["netns", "bridge", "veth"]
        if any(spec.get("command") for spec in self.containers):
            need.append("overlay")
        for limit, controller in (("memory", "memory"), ("cpus", "cpu"), ("pids", "pids")):
            if any(spec.get(limit) is not None and spec.get("command") for spec in self.containers):
                need.append("cgroup:" + controller)
        return need

    # --- the stack's shared parts ---------------------------------------------
    def firewall_host(self):
        from ansible_collections.handbuilt.containers.plugins.module_utils.firewall import Host

        if self._firewall_host is None:
            self._firewall_host = Host()
        return self._firewall_host

    def masquerade(self, wanted):
        """The subnet's NAT, the same resource as the masquerade module's default name."""
        from ansible_collections.handbuilt.containers.plugins.module_utils.firewall import Masquerade

        name = str(self.subnet).replace("/", "-")
        present = wanted and self.state == "present"
        if not present and not Masquerade.holds_ip_forward(name, self.state_dir):
            return None  # not wanted now and none of ours: no firewall work at all
        return Masquerade(str(self.subnet), name=name, exclude_interface=self.bridge,
                          state="present" if present else "absent", backend=self.firewall_backend,
                          state_dir=self.state_dir, check_mode=self.check_mode,
                          host=self.firewall_host())

    def image(self, spec):
        from ansible_collections.handbuilt.containers.plugins.module_utils.image import Image

        options = {k: v for k, v in spec.items() if k not in ("name", "state") and v is not None}
        if "url" in options:
            options["tarball"] = options.pop("url")
        # An image is removed with the stack, or alone when its own state says so.
        state = "absent" if self.state == "absent" else spec.get("state") or "present"
        return Image(spec["name"], images_dir=os.path.join(self.data_dir, "images"),
                     state=state, force=self.force, check_mode=self.check_mode, **options)

    def layout(self):
        if self._layout is None:
            from ansible_collections.handbuilt.containers.plugins.module_utils.cgroup import Layout
            self._layout = Layout.detect()
        return self._layout

    def _container_dir(self, name):
        """A container's rootfs layers (upper, work, merged) under the data dir."""
        return os.path.join(self.data_dir, "containers", name)

    def layers(self, spec):
        base = self._container_dir(spec["name"])
        lower = os.path.join(self.data_dir, "images", spec.get("image") or "busybox", "current", "rootfs")
        return dict(lower=[lower], upper=os.path.join(base, "upper"),
                    work=os.path.join(base, "work"), path=os.path.join(base, "merged"))

    def _had_process(self, name):
        """Whether a container named for removal has a rootfs or a process from an earlier
        run: removing a container needs only its name, whatever else is declared now."""
        from ansible_collections.handbuilt.containers.plugins.module_utils.container import containers_dir

        return (os.path.lexists(self._container_dir(name))
                or os.path.lexists(os.path.join(containers_dir(self.state_dir), name)))

    # --- one container's primitives ------------------------------------------
    def resources(self, spec, address):
        """(kind, resource) pairs of one container, in the order they are built."""
        name, state = spec["name"], self.state
        common = dict(state=state, force=self.force)
        # Removed with the stack, a namespace takes its veth with it (see _remove_network).
        parts = [("netns", Netns(self.nl, name, state_dir=self.state_dir,
                                 links_first=state == "present", **common))]
        parts.append(("veth", Veth(
            self.nl, spec.get("veth") or "hb-" + name, PEER_NAME, netns=name, bridge=self.bridge,
            addresses=["%s/%d" % (address, self.subnet.prefixlen)] if address else None,
            gateway=str(self.gateway) if address else None, mtu=self.mtu, hairpin=True,
            check_mode=self.check_mode, **common)))
        if not spec.get("command") and (state == "present" or not self._had_process(name)):
            return parts
        from ansible_collections.handbuilt.containers.plugins.module_utils.cgroup import Cgroup
        from ansible_collections.handbuilt.containers.plugins.module_utils.container import (
            Container, Launcher)
        from ansible_collections.handbuilt.containers.plugins.module_utils.overlay import OverlayMount

        if self.launcher is None:
            self.launcher = Launcher()

        limits = dict(memory_max=spec.get("memory"), cpus=spec.get("cpus"), pids_max=spec.get("pids"))
        limits = {k: v for k, v in limits.items() if v is not None}
        cgroup = None
        if limits or state == "absent":
            cgroup = Cgroup(self.layout(), name, parent=self.cgroup_parent,
                            relative_to_pid=self.cgroup_pid, state=state,
                            kill=state == "absent", force=self.force, state_dir=self.state_dir,
                            report_stats=False, **(limits if state == "present" else {}))
            parts.append(("cgroup", cgroup))
        layers = self.layers(spec)
        if state == "present":
            def overlay(check_mode):
                return OverlayMount(state="mounted", state_dir=self.state_dir, force=self.force,
                                    check_mode=check_mode, **layers)
        else:
            def overlay(check_mode, stopped_first=()):
                return OverlayMount(layers["path"], state="absent", state_dir=self.state_dir,
                                    force=self.force, check_mode=check_mode,
                                    stopped_first=stopped_first)
        parts.append(("overlay", overlay))
        cgroup_dirs = None
        if cgroup is not None and state == "present":
            cgroup_dirs = sorted({m.dir for m in cgroup._members() if m.placed})
        params = dict(name=name, state="started" if state == "present" else "absent",
                      state_dir=self.state_dir, rootfs=layers["path"], command=spec.get("command"),
                      env=spec.get("env"), workdir=spec.get("workdir"),
                      hostname=spec.get("hostname") or name, netns=name, cgroup=cgroup_dirs,
                      init=spec.get("init", True), stop_timeout=spec.get("stop_timeout", 5))
        parts.append(("container", lambda check_mode: Container(params, check_mode=check_mode,
                                                                report_live=False,
                                                                launcher=self.launcher)))
        # The image and the rootfs exist only once earlier steps ran, so the overlay
        # and the container are built when their turn comes; built now in check
        # mode, they validate the declaration before anything changes.
        for dummy, part in parts:
            if callable(part):
                part(True)
        return parts

    def port_forward(self):
        """All published ports, as one firewall resource named after the bridge."""
        from ansible_collections.handbuilt.containers.plugins.module_utils.firewall import PortForward

        ports = []
        for spec in self.containers if self.state == "present" else ():
            for port in spec.get("ports") or []:
                ports.append(dict(host_port=port["host"], protocol=port.get("protocol") or "tcp",
                                  host_address=port.get("host_address"),
                                  destination="%s:%s" % (self.addresses[spec["name"]],
                                                         port["container"])))
        name = "compose-" + self.bridge
        if not ports and not PortForward.holds_ip_forward(name, self.state_dir):
            return None  # nothing published now or before: no firewall work at all
        return PortForward(name, ports, state="present" if ports else "absent",
                           backend=self.firewall_backend, state_dir=self.state_dir,
                           check_mode=self.check_mode, host=self.firewall_host())

    # --- converging ------------------------------------------------------------
    def _converge(self, resource):
        if callable(resource):
            resource = resource(self.check_mode)
        return resource, resource.converge(self.check_mode)

    def _record(self, kind, name, resource, result, entry, diffs):
        # "does not exist (yet)": the stack itself builds it earlier in this run.
        self.warnings += ["%s: %s" % (name, w) for w in resource.warnings
                          if "(yet)" not in w and "assuming an earlier task" not in w]
        entry[kind] = {k: v for k, v in result.items() if k not in ("diff", "commands")}
        if result["changed"]:
            entry["changed"] = True
            entry["commands"] += result["commands"]
            diffs.append(dict(result["diff"], before_header="%s %s" % (kind, name),
                              after_header="%s %s" % (kind, name)))
        return entry["commands"] if result["changed"] else []

    def _run(self, kind, name, resource, entry, diffs):
        resource, result = self._converge(resource)
        return self._record(kind, name, resource, result, entry, diffs)

    def _shared(self, parts, results, diffs):
        """Converge the stack-wide parts (bridge, NAT, images, ports); their commands."""
        commands = []
        for kind, name, resource in parts:
            entry = {"changed": False, "commands": []}
            commands += self._run(kind, name, resource, entry, diffs)
            results[kind if kind != "image" else "image " + name] = entry[kind]
        return commands

    def _processes(self, jobs, entries, diffs):
        """Start (or stop) the containers' processes side by side.

        Each start waits for its supervisor to report (forked by one launcher,
        then the namespace set-up, in other processes); in threads those waits
        overlap. Results are recorded in declaration order.
        """
        try:
            if len(jobs) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(max_workers=min(PROCESS_WORKERS, len(jobs))) as pool:
                    done = list(pool.map(lambda job: self._converge(job[1]), jobs))
            else:
                done = [self._converge(resource) for dummy, resource in jobs]
        finally:
            if self.launcher is not None:
                self.launcher.close()
        for (name, dummy), (resource, result) in zip(jobs, done):
            self._record("container", name, resource, result, entries[name], diffs[name])

    def _containers(self, results, diffs):
        """Each container's parts in order (reverse for absent), its process last (first)."""
        entries, own_diffs, processes = {}, {}, []
        for spec in self.containers:
            name = spec["name"]
            entries[name] = {"changed": False, "commands": []}
            if self.addresses[name] is not None:
                entries[name]["address"] = str(self.addresses[name])
            own_diffs[name] = []
            processes += [(name, r) for kind, r in self.plans[name] if kind == "container"]
        if self.state == "absent":
            self._processes(processes, entries, own_diffs)
        leaving = []  # host ends of veths that go with their namespace
        removed_cgroups = []  # earlier containers' cgroups, gone by the next one's turn
        for spec in self.containers:
            name = spec["name"]
            parts = [(kind, r) for kind, r in self.plans[name] if kind != "container"]
            if self.state == "present":
                for kind, resource in parts:
                    self._run(kind, name, resource, entries[name], own_diffs[name])
                continue
            parts = dict(parts)
            # The process was stopped above; in check mode it still runs, in its own
            # namespaces: tell the overlay and the cgroup it will be gone.
            process = (entries[name].get("container") or {}).get("container") or {}
            namespaces = process.get("namespaces") or {}
            if "overlay" in parts:
                mount_ns = namespaces.get("mount")
                overlay = parts["overlay"](self.check_mode, [mount_ns] if mount_ns else [])
                self._run("overlay", name, overlay, entries[name], own_diffs[name])
            if "cgroup" in parts:
                if self.check_mode:
                    parts["cgroup"].expect_stopped(
                        [namespaces["pid"]] if namespaces.get("pid") else [], removed_cgroups)
                self._run("cgroup", name, parts["cgroup"], entries[name], own_diffs[name])
                removed_cgroups.append(name)
            leaving += self._remove_network(name, parts["veth"], parts["netns"], entries[name],
                                            own_diffs[name])
        if self.state == "present":
            self._processes(processes, entries, own_diffs)
        elif leaving and not self.check_mode:
            self._wait_gone(leaving)
        commands = []
        for spec in self.containers:
            name, entry = spec["name"], entries[spec["name"]]
            if self.state == "absent":
                release = self.ipam.release_op(name)
                if release is not None:
                    entry["commands"] += apply_plan([release], self.check_mode)
                    entry["changed"] = True
            commands += entry["commands"]
            diffs += own_diffs[name]
            results[name] = entry
        return commands

    def _remove_network(self, name, veth, netns, entry, diffs):
        """A container's veth and namespace, removed; the host ends left to wait for.

        ``ip link del`` of a veth waits for an RCU grace period each; the kernel
        removes the veths of dying namespaces in one batch. So when the pair's
        peer lies in the container's namespace, deleting the namespace deletes
        the veth (50 containers: 0.23 s instead of 1.7 s, measured here) and
        compose waits once, at the end, until the host ends are gone.
        """
        state = veth.read()
        ops = veth.plan(state)  # refuses a veth that is not ours, as an explicit delete would
        before = veth.view(state)
        goes = bool(ops) and state["peer_where"] == "netns"
        self._run("netns", name, netns, entry, diffs)
        if not (goes and entry["netns"]["changed"]):
            self._run("veth", name, veth, entry, diffs)
            return []
        # No command of its own: `ip netns del` above is the hand command that removes it.
        result = dict(changed=True, commands=[], diff=dict(before=before, after=veth.predict(before)))
        result["veth"] = None
        self._record("veth", name, veth, result, entry, diffs)
        return [veth.name]

    def _wait_gone(self, names, timeout=10.0):
        """Wait until the kernel's namespace clean-up removed these host links;
        delete what is still there after ``timeout`` (a namespace kept alive)."""
        from ansible_collections.handbuilt.containers.plugins.module_utils.netlink import find_link

        self.nl.stop_caching()  # polling must see the kernel, not a dump
        ipr = self.nl.ipr()
        pending = list(names)

        def gone():
            pending[:] = [n for n in pending if find_link(ipr, n) is not None]
            return not pending

        if not wait_until(gone, timeout, interval=0.002, longest=0.05):
            for n in pending:
                link = find_link(ipr, n)
                if link is not None:
                    ipr.link("del", index=link["index"])

    def _remove_empty_dirs(self):
        """The stack's own directories, innermost first, once nothing is left in them.

        Check mode counts what this run removes as gone (the containers' layers, the
        listed images); the state dir's contents it cannot predict, so it reads them.
        """
        containers = os.path.join(self.data_dir, "containers")
        images = os.path.join(self.data_dir, "images")
        going = {containers: {spec["name"] for spec in self.containers},
                 images: {name for name, dummy in self.images}}
        commands = []
        for path in (containers, images, self.data_dir, self.state_dir):
            if not os.path.isdir(path):
                continue
            left = set(os.listdir(path))
            if self.check_mode:
                left -= going.get(path, set())
                if path == self.data_dir:
                    left -= {os.path.basename(d) for d in going if "rmdir " + d in commands}
            if not left:
                commands += apply_plan([Op("rmdir " + path, os.rmdir, path)], self.check_mode)
        return commands

    def converge(self, check_mode):
        if check_mode != self.check_mode:
            raise AssertionError("converge(check_mode=%s) on a Stack made with check_mode=%s" % (check_mode, self.check_mode))
        lacking = host.missing(self.requirements()) if self.state == "present" else []
        if lacking:
            raise PlanError("this host lacks: %s" % ", ".join(lacking))
        network = [(kind, self.bridge, r) for kind, r in self.network]
        images = [("image", name, r) for name, r in self.images]
        ports = [("ports", "published", self.ports)] if self.ports is not None else []
        shared, containers, diffs = {}, {}, []
        self.nl.cache_links()  # a re-run reads every link and writes none
        if self.state == "present":
            commands = apply_plan(self.ipam_ops, self.check_mode)
            commands += self._shared(network + images, shared, diffs)
            commands += self._containers(containers, diffs)
            commands += self._shared(ports, shared, diffs)
        else:
            commands = self._shared(ports, shared, diffs)
            commands += self._containers(containers, diffs)
            unmounted = [entry["overlay"]["overlay"]["device"] for entry in containers.values()
                         if entry.get("overlay", {}).get("overlay")]
            for dummy, image in self.images:
                image.expect_unmounted(unmounted)
            nat = dict(self.network).get("masquerade")
            if nat is not None and self.ports is not None:
                nat.expect_removed_first(self.ports)  # check mode: after the ports' rules
            commands += self._shared(images + network[::-1], shared, diffs)
            commands += self._remove_empty_dirs()
        return dict(changed=bool(commands), commands=commands, containers=containers, diff=diffs,
                    bridge=shared.get("bridge"), masquerade=shared.get("masquerade"),
                    images={name: shared["image " + name] for name, dummy in self.images},
                    ports=shared.get("ports"),
                    summary=self.summary(containers),
                    gateway=str(self.gateway), subnet=str(self.subnet))

    def summary(self, results):
        """One line per container: what a person wants to see after a run."""
        lines = []
        for spec in self.containers:
            entry = results[spec["name"]]
            proc = (entry.get("container") or {}).get("container") or {}
            if self.state == "absent":
                state = "removed" if entry["changed"] else "absent"
            else:
                state = proc.get("state", "network only")
            limits = ", ".join("%s %s" % (k, spec[k]) for k in ("memory", "cpus", "pids")
                               if spec.get(k) is not None)
            lines.append("%s: %s, %s%s%s%s" % (
                spec["name"], entry.get("address", "-"), state,
                ", pid %s" % proc["pid"] if proc.get("pid") else "",
                ", " + limits if limits and self.state == "present" else "",
                ", changed" if entry["changed"] else ""))
        return lines
