#!/usr/bin/env python3
"""Connection churn: does a corekv server give connection memory back?

Starts `BINARY server` on one CPU with ephemeral ports, then ROUNDS times
opens N connections at once (half native, half RESP sending a SET), waits,
closes them all, and prints the server's RSS (from /proc) while they are open
and after they closed. Not a throughput benchmark: a memory measurement.

    ulimit -n 20000
    python3 bench/conn-churn.py target/debug/corekv 10 4000
"""
import socket
import subprocess
import sys
import time


def main():
    binary, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = subprocess.Popen(
        [binary, "server", "--cpus", "0", "--port", "0", "--resp-port", "0",
         "--stats-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        words = dict(w.split("=", 1) for w in line.split() if "=" in w)
        native = int(words["ports"].split("-")[0])
        resp = int(words["resp_port"])

        def rss_mb():
            with open(f"/proc/{server.pid}/status") as f:
                for l in f:
                    if l.startswith("VmRSS"):
                        return int(l.split()[1]) // 1024

        def ping():
            s = socket.create_connection(("127.0.0.1", resp))
            s.sendall(b"PING\r\n")
            s.recv(16)
            s.close()

        ping()
        time.sleep(0.3)
        print(f"base RSS {rss_mb()} MB")
        for r in range(rounds):
            conns = []
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", resp if i % 2 else native))
                if i % 2:
                    s.sendall(b"SET k%d %s\r\n" % (i, b"x" * 300))
                conns.append(s)
            ping()
            time.sleep(0.3)
            held = rss_mb()
            for s in conns:
                s.close()
            ping()
            time.sleep(0.5)
            print(f"round {r}: {n} open {held} MB, after close {rss_mb()} MB")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
