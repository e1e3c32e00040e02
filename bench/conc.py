#!/usr/bin/env python3
"""conc.py PORT PATH N: open N HTTP/1.1 connections at once, send one GET each, count 200s."""
import asyncio, sys, time

async def one(port, path):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await w.drain()
    data = await r.read()
    w.close()
    return data.split(b" ", 2)[1] if data.startswith(b"HTTP/1.") else b"ERR"

async def main():
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    t0 = time.monotonic()
    res = await asyncio.gather(*(asyncio.wait_for(one(port, path), 10) for _ in range(n)),
                               return_exceptions=True)
    wall = time.monotonic() - t0
    ok = sum(1 for x in res if x == b"200")
    print(f"wall={wall:.3f}s ok200={ok}/{n} other={[x for x in res if x != b'200'][:3]}")

asyncio.run(main())
