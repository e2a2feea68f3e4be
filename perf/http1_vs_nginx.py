#!/usr/bin/env python3
"""The data plane's MOCK and proxy routes beside nginx, on one server core.

Same wrk command for every server, server pinned to one core and wrk (and the origin) to the
other, alternating rounds. On two cores wrk saturates before a lean server does, so the fair
figure is CPU time per request on the server's core (utime + stime of the server's processes
from /proc/PID/stat), reported beside requests per second.

Peers:
  nginx        `return 200` for the MOCK route; `proxy_pass` with a keep-alive upstream for
               the proxy route (the same origin for every server)
  gw-uring     dataplane --shards 1 --io-driver uring
  gw-epoll     dataplane --shards 1 --io-driver epoll

Writes perf/results/<date>-<commit>-http1.{md,json}. Usage:
  perf/http1_vs_nginx.py [--rounds 5] [--duration 10] [--connections 64]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOAD_CPU, ROOT, SERVER_CPU, TICKS, Server, cpu_ticks, ensure_tools,  # noqa: E402,F401
                     free_port, run_id, wait_port, write_results)
BODY = '{"status":"ok"}'

MANIFEST = """
kind: Api
name: bench
routes:
  GET /health:
    integration: { type: MOCK, response: { status: 200, headers: { content-type: application/json }, body: '%s' } }
  GET /pets/{id}:
    integration: { type: HTTP_PROXY, uri: "http://127.0.0.1:%d/pets/{id}" }
---
kind: Stage
api: bench
name: prod
---
kind: Domain
name: 127.0.0.1
mappings:
  - { basePath: "", api: bench, stage: prod }
"""

NGINX = """
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log crit;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:%(origin)d; keepalive 64; }
  server {
    listen 127.0.0.1:%(port)d reuseport;
    location = /health { default_type application/json; return 200 '%(body)s'; }
    location /pets/ { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
"""


def wrk(url, duration, connections):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1, "ms": 1000, "s": 1_000_000}
    return {
        "requests": requests,
        "rps": rps,
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "p99_us": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
    }


def measure(server, path, duration, connections):
    url = f"http://127.0.0.1:{server.port}{path}"
    wrk(url, 1, connections)  # warm-up: connections, pools, caches
    before = cpu_ticks(server.pids())
    result = wrk(url, duration, connections)
    after = cpu_ticks(server.pids())
    cpu_s = (after - before) / TICKS
    result["cpu_s"] = cpu_s
    result["cpu_us_per_req"] = cpu_s * 1e6 / max(result["requests"], 1)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()

    ensure_tools()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "dataplane", "-p", "controlplane",
                        "-p", "bench"], cwd=ROOT, check=True)
    bin_dir = os.path.join(ROOT, "target", "release")
    work = tempfile.mkdtemp(prefix="gw-perf-")
    origin_port = free_port()
    origin = subprocess.Popen(["taskset", "-c", LOAD_CPU, os.path.join(bin_dir, "origin"), "--listen",
                               f"127.0.0.1:{origin_port}", "--body-bytes", "64"],
                              stdout=subprocess.DEVNULL)
    wait_port(origin_port)
    with open(os.path.join(work, "gw.yaml"), "w") as f:
        f.write(MANIFEST % (BODY, origin_port))
    table = os.path.join(work, "table.bin")
    subprocess.run([os.path.join(bin_dir, "controlctl"), "compile", "-f", os.path.join(work, "gw.yaml"), "-o",
                    table], check=True, stdout=subprocess.DEVNULL)
    nginx_port = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX % {"dir": work, "origin": origin_port, "port": nginx_port, "body": BODY})
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"

    def servers():
        gw_port = free_port()
        yield Server("nginx", [nginx_bin, "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"], nginx_port)
        for driver in ("uring", "epoll"):
            gw_port = free_port()
            yield Server(f"gw-{driver}", [os.path.join(bin_dir, "dataplane"), "--shards", "1", "--io-driver", driver,
                                          "--listen", f"127.0.0.1:{gw_port}", "--admin", f"127.0.0.1:{free_port()}",
                                          "--table", table], gw_port)

    routes = {"mock": "/health", "proxy": "/pets/1"}
    results = {route: {} for route in routes}
    try:
        for r in range(args.rounds):
            for server in servers():
                with server:
                    for route, path in routes.items():
                        m = measure(server, path, args.duration, args.connections)
                        results[route].setdefault(server.name, []).append(m)
                        print(f"round {r + 1} {route:5} {server.name:9} {m['rps']:>10.0f} req/s "
                              f"{m['cpu_us_per_req']:6.2f} us cpu/req  non2xx={m['non2xx']}", flush=True)
    finally:
        origin.terminate()
        origin.wait()
        shutil.rmtree(work, ignore_errors=True)

    date, commit = run_id()
    summary = {}
    lines = [
        f"# HTTP/1.1 data plane vs nginx, {date}, commit {commit}",
        "",
        f"One server core (cpu {SERVER_CPU}); wrk `-t1 -c{args.connections} -d{args.duration}s` and the origin "
        f"on cpu {LOAD_CPU}; {args.rounds} alternating rounds; medians. `cpu us/req` is the server's "
        "utime+stime per request; `vs nginx` is nginx's cpu/req divided by the server's (above 1: cheaper "
        "than nginx). Command: `perf/http1_vs_nginx.py`.",
        "",
        "| route | server | req/s | cpu us/req | vs nginx (cpu) | vs nginx (req/s) | p99 (wrk, us) | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for route in routes:
        nginx_cpu = statistics.median(m["cpu_us_per_req"] for m in results[route]["nginx"])
        nginx_rps = statistics.median(m["rps"] for m in results[route]["nginx"])
        for name, ms in results[route].items():
            cpu = statistics.median(m["cpu_us_per_req"] for m in ms)
            rps = statistics.median(m["rps"] for m in ms)
            p99s = [m["p99_us"] for m in ms if m["p99_us"] is not None]
            p99 = statistics.median(p99s) if p99s else float("nan")
            non2xx = sum(m["non2xx"] for m in ms)
            ratio_cpu = nginx_cpu / cpu if cpu else float("nan")
            ratio_rps = rps / nginx_rps if nginx_rps else float("nan")
            summary.setdefault(route, {})[name] = {"rps": rps, "cpu_us_per_req": cpu, "cpu_ratio_vs_nginx": ratio_cpu,
                                                   "rps_ratio_vs_nginx": ratio_rps, "p99_us": p99, "non2xx": non2xx}
            lines.append(f"| {route} | {name} | {rps:.0f} | {cpu:.2f} | {ratio_cpu:.2f}x | {ratio_rps:.2f}x | "
                         f"{p99:.0f} | {non2xx} |")
    lines.append("")
    write_results("http1", date, commit, lines, {"args": vars(args), "summary": summary, "rounds": results})


if __name__ == "__main__":
    main()
