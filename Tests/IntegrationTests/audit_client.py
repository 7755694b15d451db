#!/usr/bin/env python3
"""A control-API client that can run as another user (the tests run as root): drops to
GID and UID (setgroups, setgid, setuid) unless they are "-", then sends each request of
REQUESTS (a JSON list of [method, path, body-or-null]) on a connection of its own with
Connection: close, and prints one JSON object: its pid, uid and gid and each answer's
status and body (status 0 and the error when the connection failed).
Usage: audit_client.py SOCKET UID GID REQUESTS"""
import json
import os
import socket
import sys


def send(path, method, uri, body):
    payload = body.encode() if body is not None else b""
    head = f"{method} {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    data = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(path)
            s.sendall(head.encode() + b"\r\n" + payload)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as error:
        if not data:
            return {"status": 0, "body": str(error)}
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return {"status": status, "body": rest.decode(errors="replace")}


def main():
    path, uid, gid, requests = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if gid != "-" or uid != "-":
        os.setgroups([])
    if gid != "-":
        os.setgid(int(gid))
    if uid != "-":
        os.setuid(int(uid))
    results = [send(path, method, uri, body) for method, uri, body in requests]
    print(json.dumps({"pid": os.getpid(), "uid": os.geteuid(), "gid": os.getegid(), "results": results}))


if __name__ == "__main__":
    main()
