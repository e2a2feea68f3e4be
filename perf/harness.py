"""Shared pieces of the perf scenario scripts: tool installation, ports, CPU accounting,
pinned server processes, and writing dated results into perf/results/."""

import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"
LOAD_CPU = "1"


def ensure_tools():
    missing = [t for t in ("wrk", "nginx") if shutil.which(t) is None and not os.path.exists("/usr/sbin/" + t)]
    if missing:
        print("installing", " ".join(missing), "from apt", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        pkgs = ["wrk" if m == "wrk" else "nginx-light" for m in missing]
        subprocess.run(["apt-get", "install", "-y", "-qq"] + pkgs, check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def control_plane_link(cp_dir, cp_port, timeout=10.0):
    """The data plane's flags to follow the control plane whose data dir is `cp_dir`, once its
    first start has written the CA and the data-plane token there; also points controlctl (run
    by this process's children) at the admin's configuration."""
    token = os.path.join(cp_dir, "dataplane.token")
    deadline = time.time() + timeout
    while not os.path.exists(token):
        if time.time() > deadline:
            raise RuntimeError(f"the control plane wrote no {token}")
        time.sleep(0.05)
    os.environ["CONTROLCTL_CONFIG"] = os.path.join(cp_dir, "admin.conf")
    return ["--control-plane", f"https://127.0.0.1:{cp_port}", "--control-plane-ca",
            os.path.join(cp_dir, "pki", "ca.pem"), "--control-plane-token-file", token]


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total


def child_pids(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except OSError:
        return []


class Server:
    def __init__(self, name, cmd, port, pids_of=None):
        self.name, self.cmd, self.port = name, cmd, port
        self.proc = None
        self.pids_of = pids_of

    def __enter__(self):
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + self.cmd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        time.sleep(0.3)
        return self

    def pids(self):
        return [self.proc.pid] + child_pids(self.proc.pid)

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def build_release():
    """The release binaries the scenarios run: dataplane, controlplane/controlctl, bench/origin."""
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "dataplane", "-p", "controlplane", "-p",
                    "bench"], cwd=ROOT, check=True)


def nginx_server(work, tag, template, **values):
    """nginx from `template` (filled with `values` plus dir, tag and a free port), in the
    foreground, as a `Server`."""
    port = free_port()
    conf = os.path.join(work, f"nginx-{tag}.conf")
    with open(conf, "w") as f:
        f.write(template % dict(values, dir=work, tag=tag, port=port))
    return Server("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf, "-g", "daemon off;"], port)


def compile_table(work, name, text, controlctl=None):
    """Writes manifest `text` to work/name.yaml and compiles it with `controlctl` (this
    build's by default) into work/name.bin; returns the table's path."""
    controlctl = controlctl or os.path.join(ROOT, "target", "release", "controlctl")
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    table = os.path.join(work, name + ".bin")
    subprocess.run([controlctl, "compile", "-f", path, "-o", table], check=True, stdout=subprocess.DEVNULL)
    return table


def run_id():
    """(date, short commit) that name a run's results."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return datetime.date.today().isoformat(), commit


def write_results(kind, date, commit, lines, data):
    """Writes perf/results/<date>-<commit>-<kind>.md (the lines) and .json (data plus date and
    commit), prints the table, and returns the path without extension."""
    out_dir = os.path.join(ROOT, "perf", "results")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"{date}-{commit}-{kind}")
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines))
    with open(base + ".json", "w") as f:
        json.dump(dict(data, date=date, commit=commit), f, indent=1)
    print("\n".join(lines))
    print(f"wrote {base}.md and .json")
    return base
