#!/usr/bin/python3
"""A stand-in for systemd's socket activation, for tests on machines without systemd.

    socket_activate.py [--unix PATH:NAME] [--tcp NAME] -- PROGRAM ARGS...

Binds and listens on each socket in order, moves them to fds 3, 4, ..., sets LISTEN_PID (this
process's pid, which exec keeps), LISTEN_FDS and LISTEN_FDNAMES, prints "tcp NAME PORT" for each
TCP socket (bound to 127.0.0.1 port 0), then execs PROGRAM in place - as systemd does for a
.socket unit with Accept=no."""
import fcntl
import os
import socket
import sys

args = sys.argv[1:]
if "--" not in args:
    sys.exit("usage: socket_activate.py [--unix PATH:NAME] [--tcp NAME] -- PROGRAM ARGS...")
split = args.index("--")
specs, program = args[:split], args[split + 1:]
sockets, names = [], []
for flag, value in zip(specs[::2], specs[1::2]):
    if flag == "--unix":
        path, name = value.rsplit(":", 1)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
    elif flag == "--tcp":
        name = value
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        print(f"tcp {name} {s.getsockname()[1]}", flush=True)
    else:
        sys.exit(f"socket_activate.py: unknown flag {flag}")
    s.listen(128)
    sockets.append(s)
    names.append(name)
# Out of the way first, so that moving one socket to 3+i never closes another.
high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in sockets]
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(sockets)),
                  LISTEN_FDNAMES=":".join(names))
os.execv(program[0], program)
