#!/usr/bin/env python3
"""The edge lab's delay line: a userspace router that holds each packet for
its link's delay.

This kernel has no netem, so the sites of the lab are not joined by a bridge
(packets would cross it at once) but through this process: each lab host (a
network namespace) has one TUN device whose other end is a file descriptor
held here. A packet read from host A's descriptor is written to the
descriptor of the host that owns its destination address, once the one-way
delay between their sites has passed. Python rather than Node: attaching to a
TUN device takes an ioctl (TUNSETIFF), which Node cannot make without a
native addon; the standard library is enough here.

Usage: delay-line.py CONFIG.json
CONFIG: {"hosts": [{"dev": "dlab-s1h1", "addr": "10.78.1.1", "site": 1}, ...],
         "intraMs": 1, "interMs": {"1-2": 12.5, "1-3": 20, "2-3": 16}}
It creates one TUN device per host in its own network namespace (up.sh then
moves each into its host's namespace), prints {"event": "ready", ...} on
stdout, and relays until SIGTERM. Closing its descriptors destroys the
devices. IPv4 only; anything else (IPv6 neighbour discovery) is dropped.
"""
import fcntl
import heapq
import itertools
import json
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    with open(sys.argv[1]) as f:
        config = json.load(f)
    hosts = config['hosts']
    intra = float(config.get('intraMs', 0)) / 1000
    inter = {}
    for pair, ms in config.get('interMs', {}).items():
        a, b = (int(x) for x in pair.split('-'))
        inter[(a, b)] = inter[(b, a)] = float(ms) / 1000

    fds = {}        # fd -> host
    by_addr = {}    # IPv4 address (4 bytes) -> fd
    for host in hosts:
        fd = open_tun(host['dev'])
        fds[fd] = host
        by_addr[bytes(int(x) for x in host['addr'].split('.'))] = fd

    def delay(src, dst):
        if src['site'] == dst['site']:
            return intra
        return inter.get((src['site'], dst['site']), 0.0)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(json.dumps({'event': 'ready', 'pid': os.getpid(), 'devices': [h['dev'] for h in hosts]}), flush=True)

    queue = []      # (due, seq, fd, packet): FIFO per link, as every packet of a link has the same delay
    seq = itertools.count()
    relayed = dropped = 0
    while not stopping:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, packet = heapq.heappop(queue)
            try:
                os.write(out, packet)
                relayed += 1
            except OSError:
                # The host's device is down or its namespace is gone: the packet is lost, as on a cut link.
                dropped += 1
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        try:
            readable, _, _ = select.select(list(fds), [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in readable:
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    break
                if len(packet) < 20 or packet[0] >> 4 != 4:
                    continue
                out = by_addr.get(packet[16:20])
                if out is None:
                    dropped += 1
                    continue
                heapq.heappush(queue, (now + delay(fds[fd], fds[out]), next(seq), out, packet))
    print(json.dumps({'event': 'stopped', 'relayed': relayed, 'dropped': dropped}), flush=True)


if __name__ == '__main__':
    main()
