#!/usr/bin/env python3
"""swiftlet on a terminal: stdin in raw mode while the guest runs (Ctrl-C goes to the guest
instead of killing swiftlet), Ctrl-A x quits with status 0, and the terminal settings are
restored afterwards. Runs swiftlet under a pseudo-terminal, inside `sh` so that `stty`
can record the settings before and after. Usage: terminal_test.py SWIFTLET KERNEL WORKDIR"""
import os
import pty
import select
import sys
import time

swiftlet, kernel, work = sys.argv[1:4]
before, after = os.path.join(work, "stty.before"), os.path.join(work, "stty.after")
script = (f"stty -g > {before}; stty -a | grep -q ' icanon' || exit 90; "
          f"{swiftlet} run --kernel {kernel} --memory 32; echo swiftlet-exit=$?; stty -g > {after}")
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["/bin/sh", "-c", script])

output = b""


def read_until(marker, seconds):
    global output
    deadline = time.time() + seconds
    while marker not in output and time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                output += os.read(fd, 4096)
            except OSError:
                break
    return marker in output


if not read_until(b"tick 1", 15):
    sys.exit(f"no guest output on the terminal: {output[-300:]!r}")
os.write(fd, b"\x03")                       # Ctrl-C: in raw mode it is a byte for the guest
time.sleep(0.5)
ticks = output.count(b"tick ")
if not read_until(b"tick %d" % (ticks + 1), 10):
    sys.exit("Ctrl-C stopped swiftlet: the terminal was not in raw mode")
os.write(fd, b"\x01x")                      # Ctrl-A x: quit
if not read_until(b"swiftlet-exit=", 10):
    sys.exit(f"Ctrl-A x did not end swiftlet: {output[-300:]!r}")
code = output.split(b"swiftlet-exit=")[1][:3].split(b"\r")[0].split(b"\n")[0]
read_until(b"\xff", 1)                      # let sh run the final stty
os.waitpid(pid, 0)
if code != b"0":
    sys.exit(f"swiftlet exited {code!r} after Ctrl-A x")
with open(before) as b, open(after) as a:
    if b.read() != a.read():
        sys.exit("terminal settings were not restored")
print("terminal: raw while running, Ctrl-C to the guest, Ctrl-A x exits 0, settings restored")
