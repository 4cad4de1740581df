"""What bench/compare, bench/profile and bench/validate-wrk share: building, starting and stopping
servers, pinning, and reading a process's CPU time and memory from /proc."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(path):
    """True once something listens on the Unix socket `path` (the file appears at bind(),
    a moment before listen())."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def pinned(cpu):
    """A preexec_fn that pins the child to `cpu` (None: leave it alone)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def two_cpus():
    """(server CPU, load CPU), or (None, None) on a one-CPU machine."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        log("only one CPU: nothing is pinned, and the figures mean less")
        return None, None
    return cpus[0], cpus[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def ensure_packages(packages, present):
    """Installs Debian `packages` when `present()` is false and we are root; otherwise prints the
    command to run. Returns present() afterwards."""
    if present():
        return True
    cmd = ["apt-get", "install", "-y", *packages]
    if os.geteuid() != 0:
        log("missing; to install, run: sudo " + " ".join(cmd))
        return False
    log("installing " + " ".join(packages))
    # Debian starts nginx on port 80 after installing it; a policy-rc.d that says no keeps
    # this machine's port 80 alone (and is removed again if we created it).
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    finally:
        if created:
            policy.unlink()
    return present()


def build_release(build_dir, targets, skip=False):
    """A Release build of `targets` in build_dir (tests and examples off); returns its Path."""
    build = Path(build_dir)
    if not skip:
        log(f"building release {' '.join(targets)} in {build}")
        # The output is shown only if a step fails (GCC 12 at -O3 prints false -Wrestrict
        # warnings from inside libstdc++'s string code).
        for step in (["cmake", "-S", str(SOURCE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                      "-DUDSHTTP_BUILD_TESTS=OFF", "-DUDSHTTP_BUILD_EXAMPLES=OFF"],
                     ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2), "--target",
                      *targets]):
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                log(done.stdout + done.stderr)
                raise RuntimeError(f"{' '.join(step)} failed")
    return build


class Server:
    """A server process started on a Unix socket (and maybe a TCP port), stopped by its PID."""

    def __init__(self, name, argv, unix, tcp=None, cpu=None, cwd=None, cpu_pid_of=None,
                 wrapper_timeout=10):
        self.name, self.unix, self.tcp = name, unix, tcp
        self.proc = subprocess.Popen(argv, cwd=cwd, preexec_fn=pinned(cpu),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + wrapper_timeout
        while not accepts(unix):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start: {self.proc.stderr.read().decode()}")
            time.sleep(0.02)
        # The process whose CPU time is the server's work (nginx: its one worker).
        self.cpu_pid = cpu_pid_of(self.proc.pid) if cpu_pid_of else self.proc.pid

    def url(self, transport, path):
        if transport == "unix":
            return "http+unix://" + self.unix.replace("/", "%2F") + path
        return f"http://127.0.0.1:{self.tcp}{path}"

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def child_of(parent_pid):
    """The first child of parent_pid (nginx's one worker), waiting up to 5 s for it."""
    deadline = time.time() + 5
    while time.time() < deadline:
        out = subprocess.run(["pgrep", "-P", str(parent_pid)], capture_output=True, text=True)
        if out.stdout.split():
            return int(out.stdout.split()[0])
        time.sleep(0.02)
    raise RuntimeError(f"process {parent_pid} started no worker")
