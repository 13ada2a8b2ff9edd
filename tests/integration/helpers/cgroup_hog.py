# -*- coding: utf-8 -*-
"""A test process for the cgroup tests: it prints "ready", waits for a line on
stdin (so the test can move it into a cgroup first), then does one thing:

  mem MB         allocate and touch MB megabytes, then wait (expected: OOM-killed)
  spin SECONDS   busy-loop for SECONDS of wall time, print the elapsed time, exit
  forks N        try to fork N sleeping children (bounded, never recursive); print
                 {"forked": n, "refused": n} as JSON, kill and reap the children, exit
  sleep          wait until killed
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def main():
    mode, arg = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "0")
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "mem":
        hog = b"A" * (int(arg) << 20)  # memset: every page is touched
        print("survived %d" % len(hog), flush=True)
        sys.stdin.readline()
    elif mode == "spin":
        start = time.monotonic()
        while time.monotonic() - start < float(arg):
            pass
        print(json.dumps({"elapsed": time.monotonic() - start}), flush=True)
    elif mode == "forks":
        children, refused = [], 0
        for dummy in range(int(arg)):
            try:
                pid = os.fork()
            except BlockingIOError:  # EAGAIN: pids.max reached
                refused += 1
                continue
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        print(json.dumps({"forked": len(children), "refused": refused}), flush=True)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        for pid in children:
            os.waitpid(pid, 0)
    elif mode == "sleep":
        while True:
            time.sleep(60)


if __name__ == "__main__":
    main()
