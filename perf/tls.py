#!/usr/bin/env python3
"""HTTPS termination beside nginx, with the same certificate, each on one server core.

For an ECDSA P-256 and an RSA 2048 certificate:
  full      new connections, each a full handshake (`openssl s_time -new`, TLS 1.3)
  resumed   new connections resuming the first one's session (`openssl s_time -reuse`, TLS 1.2:
            s_time does not resume TLS 1.3 sessions, whose tickets arrive after the handshake)
  keepalive HTTPS requests on 64 keep-alive connections (`wrk`), MOCK route vs nginx `return 200`

The server is pinned to cpu 0, the client to cpu 1. On two cores the client saturates first,
so besides the rate the fair figure is the server's CPU time per handshake or request
(utime + stime from /proc/PID/stat). Alternating rounds, medians. Goals (not tests): CPU per
keep-alive request at most 1/1.2 of nginx's, full handshakes per second at least nginx's.

Writes perf/results/<date>-<commit>-tls.{md,json}. Usage:
  perf/tls.py [--rounds 3] [--duration 5] [--skip-build]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOAD_CPU, ROOT, TICKS, Server, build_release, compile_table, cpu_ticks,  # noqa: E402
                     ensure_tools, free_port, nginx_server, run_id, write_results)

BIN = os.path.join(ROOT, "target", "release")
BODY = '{"status":"ok"}'

MANIFEST = """
kind: Api
name: bench
routes:
  GET /health:
    integration: { type: MOCK, response: { status: 200, headers: { content-type: application/json }, body: '%(body)s' } }
---
kind: Stage
api: bench
name: prod
---
kind: Certificate
name: bench
certificateFile: %(cert)s
privateKeyFile: %(key)s
default: true
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
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:%(port)d ssl reuseport;
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    location = /health { default_type application/json; return 200 '%(body)s'; }
  }
}
"""


def make_certificate(work, kind):
    key, cert = os.path.join(work, f"{kind}.key"), os.path.join(work, f"{kind}.pem")
    algorithm = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ecdsa" else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *algorithm, "-nodes", "-keyout", key, "-out", cert, "-days", "30",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def s_time(port, mode, duration):
    """Connections made in `duration` seconds: (count, seconds)."""
    version = "-tls1_3" if mode == "-new" else "-tls1_2"
    started = time.time()
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "openssl", "s_time", "-connect", f"127.0.0.1:{port}",
                          mode, version, "-time", str(duration)], capture_output=True, text=True).stdout
    elapsed = time.time() - started
    found = re.search(r"(\d+) connections in [\d.]+s", out)
    return (int(found.group(1)) if found else 0), elapsed


def wrk(port, duration):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c64", f"-d{duration}s",
                          f"https://127.0.0.1:{port}/health"], capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, int(non_2xx.group(1)) if non_2xx else 0


def measure(server, scenario, duration):
    """One scenario on a running server: operations per second and server CPU µs per one."""
    before = cpu_ticks(server.pids())
    started = time.time()
    if scenario == "keepalive":
        count, bad = wrk(server.port, duration)
        if bad:
            raise RuntimeError(f"{server.name}: {bad} non-2xx responses")
        elapsed = time.time() - started
    else:
        count, elapsed = s_time(server.port, "-new" if scenario == "full" else "-reuse", duration)
    used = (cpu_ticks(server.pids()) - before) / TICKS
    if count == 0:
        raise RuntimeError(f"{server.name}: no {scenario} operations")
    return {"per_s": count / elapsed, "cpu_us": used * 1e6 / count}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    ensure_tools()
    if not args.skip_build:
        build_release()
    work = tempfile.mkdtemp(prefix="gw-tls-")
    results = {}
    scenarios = ["full", "resumed", "keepalive"]
    for kind in ["ecdsa", "rsa"]:
        cert, key = make_certificate(work, kind)
        table = compile_table(work, f"tls-{kind}", MANIFEST % dict(body=BODY, cert=cert, key=key))

        def gateway():
            port = free_port()
            cmd = [os.path.join(BIN, "dataplane"), "--table", table, "--shards", "1", "--listen",
                   f"127.0.0.1:{free_port()}", "--listen-tls", f"127.0.0.1:{port}", "--admin",
                   f"127.0.0.1:{free_port()}", "--state-dir", os.path.join(work, "dp")]
            return Server("gateway", cmd, port)

        def nginx():
            return nginx_server(work, kind, NGINX, cert=cert, key=key, body=BODY)

        samples = {(name, s): [] for name in ("gateway", "nginx") for s in scenarios}
        for round_index in range(args.rounds):
            order = [gateway, nginx] if round_index % 2 == 0 else [nginx, gateway]
            for make in order:
                with make() as server:
                    for scenario in scenarios:
                        samples[(server.name, scenario)].append(measure(server, scenario, args.duration))
        results[kind] = {
            f"{name}/{s}": {k: statistics.median(x[k] for x in v) for k in ("per_s", "cpu_us")}
            for (name, s), v in samples.items()
        }
    shutil.rmtree(work, ignore_errors=True)

    date, commit = run_id()
    lines = [
        f"# HTTPS termination beside nginx ({date}, {commit})",
        "",
        f"Release data plane (`--shards 1`) and nginx (`worker_processes 1`), each pinned to cpu 0 with the "
        f"same self-signed certificate; `openssl s_time` (full handshakes TLS 1.3, resumed TLS 1.2) and "
        f"`wrk -t1 -c64` (TLS 1.3) pinned to cpu 1. "
        f"Medians of {args.rounds} alternating rounds of {args.duration} s. CPU is the server's utime + "
        f"stime per handshake or request. Ratios above 1 favour the gateway.",
        "",
        "| certificate | scenario | gateway /s | nginx /s | rate ratio | gateway CPU µs | nginx CPU µs | CPU ratio (nginx/gateway) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in results.items():
        for s in scenarios:
            g, n = r[f"gateway/{s}"], r[f"nginx/{s}"]
            lines.append(f"| {kind} | {s} | {g['per_s']:.0f} | {n['per_s']:.0f} | {g['per_s'] / n['per_s']:.2f} | "
                         f"{g['cpu_us']:.1f} | {n['cpu_us']:.1f} | {n['cpu_us'] / g['cpu_us']:.2f} |")
    lines += [
        "",
        "Goals: keep-alive CPU ratio at least 1.2; full handshakes per second at least nginx's (rate ratio 1).",
        "",
    ]
    write_results("tls", date, commit, lines, {"rounds": args.rounds, "duration": args.duration, "results": results})


if __name__ == "__main__":
    main()
