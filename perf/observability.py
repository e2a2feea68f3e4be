#!/usr/bin/env python3
"""What metrics and access logs cost: throughput and CPU per request with them on and off.

Per-method metrics are always recorded, so "off" is the data plane built from the commit
before observability existed (--baseline, built once into target/perf-baseline/); "metrics"
is this commit without an access log, "metrics + access log" this commit with the CLF access
log written to a file on disk. Each for a MOCK route and a proxied one (origin on cpu 1).
nginx beside it: `access_log off` against the default combined log to a file, for scale.

Server on cpu 0, `bench max` (closed loop, 64 connections) on cpu 1; alternating rounds; each
run paired with its server's "off" run of the same round; medians. The goal: under 3%.

  perf/observability.py [--rounds 5] [--duration 10] [--baseline COMMIT] [--skip-build]
Writes perf/results/<date>-<commit>-observability.{md,json}.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline import BIN, max_rounds  # noqa: E402
from harness import (LOAD_CPU, ROOT, Server, build_release, compile_table, ensure_tools, free_port,  # noqa: E402
                     nginx_server, run_id, wait_port, write_results)

BASELINE = "bc514dd"

MANIFEST = """
kind: Api
name: bench
routes:
  GET /health:
    integration: { type: MOCK, response: { status: 200, body: ok } }
  GET /pets/{id}:
    integration: { type: HTTP_PROXY, uri: "http://127.0.0.1:%(origin)d/pets/{id}" }
---
kind: Stage
api: bench
name: prod
%(log)s
---
kind: Domain
name: 127.0.0.1
mappings:
  - { basePath: "", api: bench, stage: prod }
"""

NGINX = """
worker_processes 1;
pid %(dir)s/nginx-%(tag)s.pid;
error_log %(dir)s/error-%(tag)s.log crit;
events { worker_connections 4096; }
http {
  %(log)s
  upstream origin { server 127.0.0.1:%(origin)d; keepalive 64; }
  server {
    listen 127.0.0.1:%(port)d reuseport;
    location = /health { root %(dir)s; try_files /health.txt =404; }
    location /pets/ { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
"""


def build_baseline(commit):
    """dataplane and controlctl of `commit`, built in a worktree once."""
    out = os.path.join(ROOT, "target", "perf-baseline", commit)
    binaries = (os.path.join(out, "release", "dataplane"), os.path.join(out, "release", "controlctl"))
    if all(os.path.exists(b) for b in binaries):
        return binaries
    tree = tempfile.mkdtemp(prefix=f"gw-baseline-{commit}-")
    subprocess.run(["git", "worktree", "add", "--detach", tree, commit], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    try:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "dataplane", "-p", "controlplane"],
                       cwd=tree, check=True, env=dict(os.environ, CARGO_TARGET_DIR=out))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, check=False)
    return binaries


def work_and_origin(prefix):
    """A work directory on disk (with nginx's health.txt) and the bench origin on cpu 1:
    `(dir, origin port, origin process)`."""
    work = tempfile.mkdtemp(prefix=prefix, dir=os.path.join(ROOT, "target"))
    os.chmod(work, 0o755)
    with open(os.path.join(work, "health.txt"), "w") as f:
        f.write("ok")
    port = free_port()
    origin = subprocess.Popen(["taskset", "-c", LOAD_CPU, os.path.join(BIN, "origin"), "--listen",
                               f"127.0.0.1:{port}", "--body-bytes", "64"], stdout=subprocess.DEVNULL)
    wait_port(port)
    return work, port, origin


def gateway(dataplane, controlctl, work, tag, origin, log):
    table = compile_table(work, tag, MANIFEST % {"origin": origin, "log": log}, controlctl)
    port = free_port()
    # Only the logged runs name a log directory (the baseline build predates the flag).
    log_dir = ["--access-log-dir", work] if log else []
    return Server("gateway", [dataplane, "--shards", "1", "--io-driver", "uring", "--listen", f"127.0.0.1:{port}",
                              "--admin", f"127.0.0.1:{free_port()}", "--table", table] + log_dir, port)


def nginx(work, tag, origin, log):
    return nginx_server(work, tag, NGINX, origin=origin, log=log)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    if not args.skip_build:
        build_release()
    base_dp, base_ctl = build_baseline(args.baseline)
    cur_dp, cur_ctl = os.path.join(BIN, "dataplane"), os.path.join(BIN, "controlctl")
    # On disk (not tmpfs), as a production log would be.
    work, origin_port, origin = work_and_origin("gw-observability-")
    access_log = "accessLog: { destination: access.log, format: CLF }"
    configs = {
        f"gateway {args.baseline} (no observability)": lambda: gateway(base_dp, base_ctl, work, "base", origin_port, ""),
        "gateway, metrics": lambda: gateway(cur_dp, cur_ctl, work, "metrics", origin_port, ""),
        "gateway, metrics + access log": lambda: gateway(cur_dp, cur_ctl, work, "logged", origin_port, access_log),
        "nginx, access_log off": lambda: nginx(work, "off", origin_port, "access_log off;"),
        "nginx, access_log on": lambda: nginx(work, "on", origin_port, f"access_log {work}/nginx-access.log;"),
    }
    paths = {"MOCK": "/health", "proxy": "/pets/1"}
    try:
        runs = max_rounds(configs, paths, args.rounds, args.duration, work)
        logged_lines = sum(1 for _ in open(os.path.join(work, "access.log")))
    finally:
        origin.terminate()
        origin.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    base_name = f"gateway {args.baseline} (no observability)"

    def paired(name, kind, metric):
        base = runs[(base_name if name.startswith("gateway") else "nginx, access_log off", kind)]
        return med(x[metric] / b[metric] for x, b in zip(runs[(name, kind)], base))

    summary = {f"{name} / {kind}": {
        "rps": med(x["achieved_rate"] for x in v), "cpu_us_per_req": med(x["cpu_us_per_req"] for x in v),
        "rps_vs_off": paired(name, kind, "achieved_rate"), "cpu_vs_off": paired(name, kind, "cpu_us_per_req"),
        "rps_rounds": [round(x["achieved_rate"]) for x in v]} for (name, kind), v in runs.items()}
    summary["gateway_access_log_lines"] = logged_lines
    date, commit = run_id()
    lines = [f"# Metrics and access logs: cost, {date}, commit {commit}", "",
             f"Server on cpu 0 (1 shard / 1 worker), `bench max` with 64 connections on cpu 1, {args.duration} s x "
             f"{args.rounds} alternating rounds, medians; ratios pair each run with its server's \"off\" run of the "
             f"same round (gateway: the build of {args.baseline}, before per-method metrics and access logs; nginx: "
             f"`access_log off`). The access log is CLF on disk ({logged_lines} lines written in the logged runs). "
             f"Command: `perf/observability.py --rounds {args.rounds} --duration {args.duration}`.", "",
             "| server | route | req/s | req/s vs off | CPU us/req | CPU vs off | rounds req/s |",
             "|---|---|---|---|---|---|---|"]
    for (name, kind) in runs:
        v = summary[f"{name} / {kind}"]
        lines.append(f"| {name} | {kind} | {v['rps']:.0f} | {v['rps_vs_off'] - 1:+.1%} | {v['cpu_us_per_req']:.2f} | "
                     f"{v['cpu_vs_off'] - 1:+.1%} | {', '.join(map(str, v['rps_rounds']))} |")
    write_results("observability", date, commit, lines + [""], summary)


if __name__ == "__main__":
    main()
