#!/usr/bin/env python3
"""Drives a swiftlet control API with Python's standard library only (http.client over
AF_UNIX): configure -> InstanceStart -> pause -> resume -> SendCtrlAltDel.
Usage: api_client.py SOCKET KERNEL OUTPUT_FILE. Exits non-zero with a message on failure."""
import http.client
import json
import socket
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def call(path, method, uri, body=None, expect=204):
    connection = UnixHTTPConnection(path)
    payload = json.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"} if payload else {}
    connection.request(method, uri, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.status != expect:
        sys.exit(f"{method} {uri}: expected {expect}, got {response.status} {data!r}")
    return json.loads(data) if data else None


def output_size(path):
    with open(path, "rb") as f:
        return len(f.read())


def wait_for_growth(path, since, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if output_size(path) > since:
            return True
        time.sleep(0.05)
    return False


def main():
    sock, kernel, output = sys.argv[1:4]
    info = call(sock, "GET", "/", expect=200)
    assert info["state"] == "Not started", info
    call(sock, "PUT", "/boot-source", {"kernel_image_path": kernel})
    call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    bad = call(sock, "PUT", "/machine-config", {"vcpu_count": "two", "mem_size_mib": 32}, expect=400)
    assert "fault_message" in bad, bad
    call(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    if not wait_for_growth(output, 0, 10):
        sys.exit("no guest output after InstanceStart")
    assert call(sock, "GET", "/", expect=200)["state"] == "Running"
    call(sock, "PATCH", "/vm", {"state": "Paused"})
    assert call(sock, "GET", "/", expect=200)["state"] == "Paused"
    paused_at = output_size(output)
    time.sleep(1.5)
    if output_size(output) != paused_at:
        sys.exit("guest output continued while paused")
    call(sock, "PATCH", "/vm", {"state": "Resumed"})
    if not wait_for_growth(output, paused_at, 10):
        sys.exit("no guest output after resume")
    call(sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    print("python client: configure, start, pause (1.5 s silent), resume, shutdown: ok")


if __name__ == "__main__":
    main()
