# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Profile the compose module's work in-process (no AnsiballZ, no Ansible).

Run by ``bench/run.py --profile N`` inside the sandbox, with the managed hosts'
interpreter (/usr/bin/python3, Debian's pyroute2):

    python3 bench/profile_compose.py ARGS.json OUT.txt

ARGS.json holds the compose module's parameters (as build_container.yml passes
them). Three phases run under cProfile, each on a fresh Stack exactly as the
module builds it: the first run (state present on an empty host), the no-op
re-run, and teardown (state absent). OUT.txt gets wall times, import costs and
the top functions of each phase by cumulative and by own time.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".collections"))


def main(args_path, out_path, top=30):
    with open(args_path) as fh:
        p = json.load(fh)
    report = io.StringIO()
    t0 = time.perf_counter()
    import pyroute2  # noqa: F401
    t_pyroute2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    from ansible_collections.handbuilt.containers.plugins.module_utils.compose import Stack
    from ansible_collections.handbuilt.containers.plugins.module_utils.declaration import Network
    from ansible_collections.handbuilt.containers.plugins.module_utils.netlink import Netlink
    t_utils = time.perf_counter() - t0
    report.write("python %s, %d containers (workload %s)\n"
                 % (sys.version.split()[0], len(p["containers"]), p.get("workload", "?")))
    report.write("import pyroute2: %.3f s; import compose + netlink module_utils (after pyroute2): %.3f s\n\n"
                 % (t_pyroute2, t_utils))
    summary = {}

    def converge(state):
        netlink = Netlink()
        try:
            stack = Stack(netlink, p["containers"], Network(p["bridge"], p["subnet"], p["gateway"]),
                          state=state, images=p.get("images"), masquerade=p.get("masquerade", False),
                          state_dir=p["state_dir"], data_dir=p["data_dir"],
                          cgroup_parent=p["cgroup_parent"],
                          cgroup_relative_to_pid=p["cgroup_relative_to_pid"],
                          firewall_backend="auto", check_mode=False)
            return stack.converge(False)
        finally:
            netlink.close()

    for phase, state in (("first run", "present"), ("no-op re-run", "present"), ("teardown", "absent")):
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        result = converge(state)
        prof.disable()
        wall = time.perf_counter() - t0
        summary[phase] = dict(seconds=wall, changed=result["changed"], commands=len(result["commands"]),
                              result_bytes=len(json.dumps(result)),
                              diff_bytes=len(json.dumps(result.get("diff"))))
        report.write("=" * 78 + "\n%s (state=%s): %.3f s wall under cProfile, changed=%s, %d commands\n"
                     % (phase, state, wall, result["changed"], len(result["commands"])))
        for order in ("cumulative", "tottime"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order).print_stats(top)
            text = buf.getvalue()
            text = text[text.find("   ncalls"):] if "   ncalls" in text else text
            report.write("\n-- top %d by %s --\n%s" % (top, order, text))
        if phase == "no-op re-run":
            # cProfile inflates the many small calls of netlink decoding: the no-op's
            # plain wall time, best of five, is the figure to compare changes by.
            walls = []
            for dummy in range(5):
                t0 = time.perf_counter()
                converge("present")
                walls.append(time.perf_counter() - t0)
            summary["no-op without profiler (best of 5)"] = min(walls)
            report.write("\nno-op re-run without profiler: best %.3f s, all %s\n"
                         % (min(walls), " ".join("%.3f" % w for w in walls)))
    with open(out_path, "w") as fh:
        fh.write(report.getvalue())
    print(json.dumps(dict(import_pyroute2=t_pyroute2, import_utils=t_utils, phases=summary)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
