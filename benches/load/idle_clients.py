#!/usr/bin/env python3
"""Open N keep-alive connections to 127.0.0.1:PORT one after the other, send one request on each
and read its answer, then keep them all open and idle until stdin closes (idle_memory.sh).

Usage: idle_clients.py PORT MODE N     MODE: h1 | tls-h1 | tls-h2 (HTTP/2 needs PyPI `h2`)
Prints "ready N" on stdout once every connection has had its answer."""
import socket
import ssl
import sys


def request_h1(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed before the answer")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"unexpected answer: {head[:80]!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        body += s.recv(4096)


def request_h2(s):
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                          (":authority", "bench")], end_stream=True)
    s.sendall(conn.data_to_send())
    while True:
        data = s.recv(65536)
        if not data:
            raise SystemExit("connection closed before the answer")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamEnded):
                s.sendall(conn.data_to_send())
                return s, conn
        s.sendall(conn.data_to_send())


def main():
    port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"] if mode == "tls-h2" else ["http/1.1"])
    keep = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if mode != "h1":
            s = ctx.wrap_socket(s, server_hostname="localhost")
        if mode == "tls-h2":
            keep.append(request_h2(s))
        else:
            request_h1(s)
            keep.append(s)
    print(f"ready {len(keep)}", flush=True)
    sys.stdin.read()


main()
