#!/usr/bin/env python3
"""Lists or deletes JetStream streams over the raw NATS protocol (stdlib only: no `nats`
CLI, no nats-py). scripts/load uses it to remove the streams of a load-test run's prefix.

  nats_streams.py [--url nats://127.0.0.1:4222] delete NAME...   # prints what it did
  nats_streams.py [--url ...] list [PREFIX]                       # stream names

Exit status 1 if a request got no answer or the server said something other than "deleted"
or "not found" (a stream that is already gone is not an error).
"""

import argparse
import json
import socket
import sys
import urllib.parse


class Nats:
    def __init__(self, url, timeout=5.0):
        parsed = urllib.parse.urlparse(url)
        self.sock = socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=timeout
        )
        self.buf = b""
        self._line()  # INFO {...}
        connect = {"verbose": False, "pedantic": False, "lang": "python-raw", "version": "1"}
        if parsed.username:
            connect["user"] = urllib.parse.unquote(parsed.username)
            connect["pass"] = urllib.parse.unquote(parsed.password or "")
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        while True:
            line = self._line()
            if line.startswith(b"PONG"):
                break
            if line.startswith(b"-ERR"):
                raise RuntimeError(line.decode(errors="replace"))
        self.sid = 0

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("NATS closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("NATS closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def request(self, subject, payload=b""):
        self.sid += 1
        inbox = f"_INBOX.aurora_load_{self.sid}"
        self.sock.sendall(
            f"SUB {inbox} {self.sid}\r\nUNSUB {self.sid} 1\r\n".encode()
            + f"PUB {subject} {inbox} {len(payload)}\r\n".encode()
            + payload
            + b"\r\n"
        )
        while True:
            line = self._line()
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                size = int(line.split()[-1])
                return json.loads(self._exact(size) or b"{}")
            elif line.startswith(b"HMSG "):
                parts = line.split()
                header_size, total = int(parts[-2]), int(parts[-1])
                data = self._exact(total)
                status = data[:header_size].decode(errors="replace").splitlines()[0]
                # "NATS/1.0 503": no responders (JetStream not enabled).
                raise RuntimeError(f"{subject}: {status}")
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode(errors="replace"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("delete")
    d.add_argument("names", nargs="+")
    ls = sub.add_parser("list")
    ls.add_argument("prefix", nargs="?", default="")
    args = parser.parse_args()
    try:
        nats = Nats(args.url)
    except (OSError, RuntimeError) as error:
        print(f"nats_streams: cannot connect to {args.url}: {error}", file=sys.stderr)
        return 1
    status = 0
    if args.command == "list":
        offset = 0
        while True:
            answer = nats.request("$JS.API.STREAM.NAMES", json.dumps({"offset": offset}).encode())
            names = answer.get("streams") or []
            for name in names:
                if name.startswith(args.prefix):
                    print(name)
            offset += len(names)
            if not names or offset >= answer.get("total", 0):
                break
        return 0
    for name in args.names:
        try:
            answer = nats.request(f"$JS.API.STREAM.DELETE.{name}")
        except (OSError, RuntimeError) as error:
            print(f"nats_streams: deleting {name}: {error}", file=sys.stderr)
            status = 1
            continue
        if answer.get("success"):
            print(f"deleted stream {name}")
        elif (answer.get("error") or {}).get("err_code") == 10059:  # stream not found
            print(f"no stream {name}")
        else:
            print(f"nats_streams: deleting {name}: {answer.get('error')}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
