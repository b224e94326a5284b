"""The floor under daphne's CPU per delivered message: a bare Python loop sending one small
frame to each of many loopback TCP sockets, with a separate process reading them all.

    .venv/bin/python bench/floor.py [--sockets 1000] [--rounds 200] [--size 450]

Prints the sender's CPU per send (nearly all of it the kernel's TCP path, which on loopback
also runs the receiving side's softirq work): what no Python server can go below on this
machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import selectors
import socket
import time


def reader(port: int, sockets: int, ready: multiprocessing.Event, stop: multiprocessing.Event):
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(sockets):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ)
        conns.append(conn)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            try:
                key.fileobj.recv(1 << 16)
            except BlockingIOError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--size", type=int, default=450)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0), backlog=args.sockets)
    port = listener.getsockname()[1]
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    child = multiprocessing.Process(target=reader, args=(port, args.sockets, ready, stop))
    child.start()
    accepted = [listener.accept()[0] for _ in range(args.sockets)]
    ready.wait()
    for conn in accepted:
        conn.setblocking(False)
    frame = bytes([0x81, 126]) + args.size.to_bytes(2, "big") + b"x" * args.size
    cpu0, wall0 = time.process_time(), time.monotonic()
    for _ in range(args.rounds):
        for conn in accepted:
            conn.send(frame)
        time.sleep(0.01)  # steps apart, as a generation's are; the reader keeps up
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    stop.set()
    child.join()
    sends = args.rounds * args.sockets
    print(f"{sends} sends: {cpu / sends * 1e6:.1f} µs of sender CPU each ({wall:.1f} s wall)")


if __name__ == "__main__":
    main()
