#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# hold_conns.py: open many TCP connections and hold them (idle, or trickling one header line
# every --trickle seconds, slowloris-style), then close them all. Connects are non-blocking, so
# connections a server leaves in (or beyond) its listen queue never stall the others. Writes
# "N" (connections opened) to --ready once all connects were started; stops by itself after
# --hold seconds or when --stop appears.
#
# Connects are paced (50 every 50 ms).
#
# usage: hold_conns.py [--source ADDR] [--hold S] [--trickle S] [--ready FILE] [--stop FILE]
#                      HOST:PORT:COUNT...
import argparse
import errno
import os
import resource
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=None)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--trickle", type=float, default=0.0)
    ap.add_argument("--ready", default=None)
    ap.add_argument("--stop", default=None)
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for t in a.targets:
        host, port, count = t.rsplit(":", 2)
        for _ in range(int(count)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            if a.source:
                s.bind((a.source, 0))
            e = s.connect_ex((host, int(port)))
            if e not in (0, errno.EINPROGRESS):
                s.close()
                continue
            socks.append(s)
            # Paced, so the listen queue drains as it fills: an idle client whose handshake
            # the kernel completed only by SYN cookie (queue full) would never be accepted.
            if len(socks) % 50 == 0:
                time.sleep(0.05)
    if a.ready:
        with open(a.ready + ".tmp", "w") as f:
            f.write("%d\n" % len(socks))
        os.rename(a.ready + ".tmp", a.ready)
    end = time.monotonic() + a.hold
    n = 0
    while time.monotonic() < end:
        if a.stop and os.path.exists(a.stop):
            break
        if a.trickle > 0:
            line = b"GET /healthz HTTP/1.1\r\n" if n == 0 else b"X-Slow-%d: 1\r\n" % n
            for s in socks:
                try:
                    s.send(line)
                except OSError:
                    pass
            n += 1
            time.sleep(min(a.trickle, max(0.0, end - time.monotonic())))
        else:
            time.sleep(0.05)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
