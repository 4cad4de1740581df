#!/usr/bin/python3
"""Checks examples/kubernetes/pod.yaml, then plays its permission story out on this machine.

    check_kubernetes.py POD_YAML UDSHTTPD UDSHTTP

1. The manifest: valid YAML; a Pod whose udshttpd sidecar and app share an emptyDir at one
   path; every UDSHTTP_ variable is a real udshttpd option; the socket lies in the volume; its
   mode gives the group read/write and others nothing; --allow-gid is the pod's fsGroup; the
   app runs as another uid; the probes call the same socket; the grace period covers the drain.
2. As root, it then does what the kubelet would: a directory owned by group fsGroup with the
   setgid bit; udshttpd started as the sidecar's uid with the fsGroup as a supplementary group
   and the manifest's environment; the probe command run as the app's uid with the fsGroup
   (answered) and without it (refused by the file mode).
Prints one line per check; exits 1 on the first failure.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import yaml


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok:", message)


def main(pod_yaml, udshttpd, udshttp):
    with open(pod_yaml) as f:
        docs = list(yaml.safe_load_all(f))
    check(len(docs) == 1 and isinstance(docs[0], dict), "one YAML document")
    pod = docs[0]
    check(pod.get("apiVersion") == "v1" and pod.get("kind") == "Pod", "a v1 Pod")
    spec = pod["spec"]
    fs_group = spec["securityContext"]["fsGroup"]
    check(isinstance(fs_group, int), f"fsGroup is set ({fs_group})")

    volumes = {v["name"]: v for v in spec["volumes"]}
    sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    check(len(sidecars) == 1 and "udshttpd" in " ".join(sidecars[0]["command"]),
          "udshttpd is a native sidecar (init container, restartPolicy Always)")
    sidecar = sidecars[0]
    apps = spec["containers"]
    check(len(apps) >= 1, "an app container")

    def mount_of(container):
        for m in container.get("volumeMounts", []):
            if "emptyDir" in volumes.get(m["name"], {}):
                return m["name"], m["mountPath"]
        return None

    shared = mount_of(sidecar)
    check(shared is not None, "the sidecar mounts an emptyDir")
    for app in apps:
        check(mount_of(app) == shared, f"{app['name']} mounts the same volume at {shared[1]}")

    env = {e["name"]: e["value"] for e in sidecar.get("env", [])}
    help_text = subprocess.run([udshttpd, "--help"], capture_output=True, text=True).stdout
    for name in env:
        option = "--" + name[len("UDSHTTP_"):].lower().replace("_", "-")
        check(name.startswith("UDSHTTP_") and option in help_text,
              f"{name} is udshttpd's {option}")
    sock = env["UDSHTTP_LISTEN"]
    check(os.path.dirname(sock) == shared[1], f"the socket {sock} is in the shared volume")
    mode = int(env.get("UDSHTTP_SOCKET_MODE", "0660"), 8)
    check(mode & 0o060 == 0o060 and mode & 0o007 == 0,
          f"socket mode {mode:04o}: group read/write, others nothing")
    check(env.get("UDSHTTP_ALLOW_GID") == str(fs_group), "--allow-gid is the pod's fsGroup")
    side_uid = sidecar["securityContext"]["runAsUser"]
    for app in apps:
        check(app["securityContext"]["runAsUser"] != side_uid,
              f"{app['name']} runs as another uid than udshttpd (the group lets it in)")
    url = "http+unix://" + urllib.parse.quote(sock, safe="") + "/healthz"
    for probe in ("startupProbe", "livenessProbe"):
        command = sidecar[probe]["exec"]["command"]
        check(url in command, f"{probe} calls {url}")
    drain = env.get("UDSHTTP_DRAIN_TIMEOUT", "10s")
    check(drain.endswith("s") and int(drain[:-1]) < spec["terminationGracePeriodSeconds"],
          "terminationGracePeriodSeconds is longer than the drain")

    if os.geteuid() != 0:
        print("skipped: playing the permissions out needs root (setuid/setgid children)")
        return
    app_uid = apps[0]["securityContext"]["runAsUser"]
    side_gid = sidecar["securityContext"]["runAsGroup"]
    tmp = tempfile.mkdtemp(prefix="udshttp-k8s-")
    os.chmod(tmp, 0o755)
    volume = os.path.join(tmp, "volume")
    os.mkdir(volume)
    os.chown(volume, 0, fs_group)
    os.chmod(volume, 0o2770)  # what the kubelet does to an emptyDir with fsGroup
    local_sock = os.path.join(volume, os.path.basename(sock))
    daemon_env = {**os.environ, **env, "UDSHTTP_LISTEN": local_sock}
    server = subprocess.Popen([udshttpd], env=daemon_env, user=side_uid, group=side_gid,
                              extra_groups=[fs_group], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while not os.path.exists(local_sock):
            if server.poll() is not None or time.time() > deadline:
                fail("udshttpd did not start with the manifest's environment: " +
                     server.stderr.read().decode())
            time.sleep(0.02)
        time.sleep(0.1)
        st = os.stat(local_sock)
        check(st.st_gid == fs_group and st.st_mode & 0o777 == mode,
              f"the socket is group {fs_group}, mode {mode:04o}")
        local_url = "http+unix://" + urllib.parse.quote(local_sock, safe="") + "/healthz"

        def probe(groups):
            return subprocess.run([udshttp, "-sSf", local_url], capture_output=True, text=True,
                                  user=app_uid, group=app_uid, extra_groups=groups, timeout=10)

        with_group = probe([fs_group])
        check(with_group.returncode == 0 and '"status":"ok"' in with_group.stdout,
              f"uid {app_uid} in group {fs_group} is answered")
        without = probe([])
        check(without.returncode == 7 and "permission" in without.stderr.lower(),
              f"uid {app_uid} without group {fs_group} cannot connect ({without.stderr.strip()})")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    check(not os.path.exists(local_sock), "udshttpd removed its socket on SIGTERM")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    main(*sys.argv[1:])
