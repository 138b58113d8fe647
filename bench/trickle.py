#!/usr/bin/env python3
"""Slowloris-style clients for bench/soak.sh.

Opens N TLS connections to the gateway and sends a request head one byte every INTERVAL seconds,
never finishing it. Prints, for each connection, how long the gateway let it live and whether it
answered before closing. Bounded: gives up after MAX seconds. Loopback only.

Usage: trickle.py PORT [N=5] [INTERVAL=0.5] [MAX=40]
"""
import socket
import ssl
import sys
import threading
import time

port = int(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 5
interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
max_s = float(sys.argv[4]) if len(sys.argv) > 4 else 40.0
head = (b"GET /sdk/vim25/8.0.3.0/HostSystem/host-21/name HTTP/1.1\r\nHost: localhost\r\n"
        + b"X-Trickle: " + b"a" * 4096)
results = [None] * n


def one(i):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    answer, sent = b"", 0
    try:
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                               server_hostname="localhost")
    except OSError as e:
        results[i] = (0.0, 0, f"handshake failed: {e}")
        return
    start = time.monotonic()
    sock.settimeout(interval)
    outcome = "still open at MAX"
    try:
        for b in head:
            if time.monotonic() - start > max_s:
                break
            sock.sendall(bytes([b]))
            sent += 1
            try:
                data = sock.recv(4096)
                if not data:
                    outcome = "closed by gateway"
                    break
                answer += data
            except socket.timeout:
                pass
    except (OSError, ssl.SSLError) as e:
        outcome = f"closed by gateway ({type(e).__name__})"
    finally:
        sock.close()
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") if answer else "no answer"
    results[i] = (time.monotonic() - start, sent, f"{outcome}; {status}")


threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i, (secs, sent, what) in enumerate(results):
    print(f"TRICKLE conn {i}: {secs:.1f} s, {sent} header bytes sent, {what}")
