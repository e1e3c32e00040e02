#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""notify_listen.py: stand in for systemd's notification socket in the serve tests.

usage: notify_listen.py SOCKET_PATH OUT SECONDS

Binds an AF_UNIX datagram socket at SOCKET_PATH and appends every datagram received to OUT, one
per line (newlines inside a datagram shown as '|'), flushing each, until SECONDS have passed or a
datagram containing STOPPING=1 was followed by one more second of silence.
"""
import os
import socket
import sys
import time

path, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.2)
deadline = time.monotonic() + seconds
stop_at = None
with open(out, "a") as f:
    while time.monotonic() < deadline and (stop_at is None or time.monotonic() < stop_at):
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        msg = data.decode("utf-8", "replace").replace("\n", "|")
        f.write(msg + "\n")
        f.flush()
        if "STOPPING=1" in msg:
            stop_at = time.monotonic() + 1.0
s.close()
os.unlink(path)
