#!/usr/bin/env python3
"""The gateway against the 10,000 RPS baseline, beside nginx and HAProxy, on this machine.

Scenarios (servers pinned to cpu 0; the generator `bench` and the origin on cpu 1):
  1. steady: 10,000 req/s for --duration seconds through the proxy route, open loop, latency
     percentiles for each server and for the origin direct, and the latency each proxy adds
     over direct (p50 and p99 differences);
  4. max: closed-loop throughput on the MOCK and proxy routes (nginx `return 200` / HAProxy
     `http-request return` for MOCK), with CPU time per request on the server's core;
  5. idle: RSS of the data plane holding 10,000 idle keep-alive connections.
  2. burst: a stage throttled at 10,000/s with burst 5,000 takes 6,000 requests at once from
     idle: admitted and 429 counts (gateway, and nginx `limit_req` with the same rate and burst);
  3. overload: 20,000 req/s offered against that limit for --duration seconds: admitted per
     second.

Alternating rounds; medians. Writes perf/results/<date>-<commit>-baseline.{md,json,svg}.
  perf/baseline.py [--rounds 3] [--duration 30] [--skip-build]
"""

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOAD_CPU, ROOT, SERVER_CPU, TICKS, Server, cpu_ticks, ensure_tools, free_port,  # noqa: E402
                     run_id, wait_port, write_results)
from http1_vs_nginx import BODY, MANIFEST, NGINX  # noqa: E402

BIN = os.path.join(ROOT, "target", "release")
# Enough to keep the offered load open at 10,000/s with sub-millisecond answers (1,250/s each),
# few enough that the generator's threads do not crowd the origin on the load core.
STEADY_CONNECTIONS = "8"

THROTTLED = """
kind: Api
name: bench
routes:
  GET /health:
    integration: { type: MOCK, response: { status: 200, body: ok } }
---
kind: Stage
api: bench
name: prod
throttle: { rate: 10000, burst: 5000 }
---
kind: Domain
name: 127.0.0.1
mappings:
  - { basePath: "", api: bench, stage: prod }
"""

NGINX_LIMITED = """
worker_processes 1;
pid %(dir)s/nginx-limited.pid;
error_log %(dir)s/error-limited.log crit;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
  access_log off;
  # One key for every request (an empty key would not be limited at all).
  limit_req_zone $binary_remote_addr zone=stage:1m rate=10000r/s;
  server {
    listen 127.0.0.1:%(port)d reuseport;
    # Served as a static file: `return` would answer before limit_req's phase runs.
    location = /health { limit_req zone=stage burst=5000 nodelay; limit_req_status 429; root %(dir)s; try_files /health.txt =404; }
  }
}
"""

HAPROXY = """
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:%(port)d
  http-request return status 200 content-type application/json string '%(body)s' if { path /health }
  default_backend origin
backend origin
  http-reuse always
  server o1 127.0.0.1:%(origin)d
"""


def bench(args, json_path):
    cmd = ["taskset", "-c", LOAD_CPU, os.path.join(BIN, "bench")] + args + ["--json", json_path]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(json_path) as f:
        return json.load(f)


def max_rounds(configs, paths, rounds, duration, work):
    """`bench max` (64 connections) against every server of `configs` (name -> a function
    starting it) for every route of `paths` (kind -> path), in alternating rounds, with the
    server's CPU per request; `{(name, kind): [bench result per round]}`."""
    runs = {(name, kind): [] for name in configs for kind in paths}
    for r in range(rounds):
        for name, make in configs.items():
            with make() as s:
                for kind, path in paths.items():
                    start = cpu_ticks(s.pids())
                    m = bench(["max", "--duration", str(duration), "--connections", "64",
                               f"http://127.0.0.1:{s.port}{path}"], os.path.join(work, "m.json"))
                    m["cpu_us_per_req"] = (cpu_ticks(s.pids()) - start) / TICKS * 1e6 / max(m["completed"], 1)
                    assert m["status"]["2xx"] == m["completed"], f"{name} {kind}: {m['status']}"
                    runs[(name, kind)].append(m)
                    print(f"round {r + 1} {name} {kind}: {m['achieved_rate']:.0f}/s, "
                          f"{m['cpu_us_per_req']:.2f} us/req", flush=True)
    return runs


def gateway_rounds(configs, rounds, duration, work, origin):
    """`max_rounds` over the MOCK and proxy routes of the perf manifest, then the origin stopped
    and the work directory removed."""
    try:
        return max_rounds(configs, {"MOCK": "/health", "proxy": "/pets/1"}, rounds, duration, work)
    finally:
        origin.terminate()
        origin.wait()
        shutil.rmtree(work, ignore_errors=True)


def paired_table(runs, before_name):
    """Medians of `max_rounds` results, each run's rate and CPU paired with `before_name`'s run
    of the same round: `(summary, markdown table lines)`."""
    med = statistics.median

    def paired(name, kind, metric):
        return med(x[metric] / b[metric] for x, b in zip(runs[(name, kind)], runs[(before_name, kind)]))

    summary = {f"{name} / {kind}": {
        "rps": med(x["achieved_rate"] for x in v), "cpu_us_per_req": med(x["cpu_us_per_req"] for x in v),
        "rps_vs_before": paired(name, kind, "achieved_rate"), "cpu_vs_before": paired(name, kind, "cpu_us_per_req"),
        "cpu_rounds": [round(x["cpu_us_per_req"], 2) for x in v]} for (name, kind), v in runs.items()}
    lines = ["| server | route | req/s | req/s vs before | CPU us/req | CPU vs before | CPU us/req by round |",
             "|---|---|---|---|---|---|---|"]
    for (name, kind) in runs:
        v = summary[f"{name} / {kind}"]
        lines.append(f"| {name} | {kind} | {v['rps']:.0f} | {v['rps_vs_before'] - 1:+.1%} | "
                     f"{v['cpu_us_per_req']:.2f} | {v['cpu_vs_before'] - 1:+.1%} | "
                     f"{', '.join(map(str, v['cpu_rounds']))} |")
    return summary, lines


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle_connections(port, n):
    """Opens n keep-alive connections, sends one request on each, and keeps them open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 1024)), hard))
    req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
    return socks


def svg_chart(summary, path):
    """Latency percentiles at 10k req/s and max throughput, side by side, as bars."""
    steady = summary.get("steady", {})
    names = list(steady.keys())
    width, height, pad = 760, 300, 50
    bar_w = (width - 2 * pad) / max(1, len(names) * 3 + len(names))
    top = max([steady[n]["p99_us"] for n in names] + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 60}" font-family="sans-serif" font-size="11">',
             f'<text x="{pad}" y="18" font-size="13">Latency at 10,000 req/s through the proxy route (us; p50, p90, p99)</text>']
    colors = ["#4c78a8", "#f58518", "#e45756"]
    x = pad
    for name in names:
        for i, key in enumerate(("p50_us", "p90_us", "p99_us")):
            v = steady[name][key]
            h = (height - 40) * v / top
            parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colors[i]}"/>')
            parts.append(f'<text x="{x:.1f}" y="{height - h - 3:.1f}">{v:.0f}</text>')
            x += bar_w
        parts.append(f'<text x="{x - 3 * bar_w:.1f}" y="{height + 16}">{name}</text>')
        x += bar_w
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "dataplane", "-p", "controlplane", "-p",
                        "bench"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="gw-baseline-")
    # nginx workers run as an unprivileged user and serve a file from here.
    os.chmod(work, 0o755)
    origin_port = free_port()
    origin = subprocess.Popen(["taskset", "-c", LOAD_CPU, os.path.join(BIN, "origin"), "--listen",
                               f"127.0.0.1:{origin_port}", "--body-bytes", "64"], stdout=subprocess.DEVNULL)
    wait_port(origin_port)
    with open(os.path.join(work, "gw.yaml"), "w") as f:
        f.write(MANIFEST % (BODY, origin_port))
    table = os.path.join(work, "table.bin")
    subprocess.run([os.path.join(BIN, "controlctl"), "compile", "-f", os.path.join(work, "gw.yaml"), "-o", table],
                   check=True, stdout=subprocess.DEVNULL)

    def servers():
        port = free_port()
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(NGINX % {"dir": work, "origin": origin_port, "port": port, "body": BODY})
        yield Server("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-c", os.path.join(work, "nginx.conf"),
                               "-g", "daemon off;"], port)
        port = free_port()
        with open(os.path.join(work, "haproxy.cfg"), "w") as f:
            f.write(HAPROXY % {"origin": origin_port, "port": port, "body": BODY})
        yield Server("haproxy", [shutil.which("haproxy") or "/usr/sbin/haproxy", "-f",
                                 os.path.join(work, "haproxy.cfg")], port)
        port = free_port()
        yield Server("gateway", [os.path.join(BIN, "dataplane"), "--shards", "1", "--io-driver", "uring", "--listen",
                                 f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}", "--table", table], port)

    rounds = {"steady": {}, "max_mock": {}, "max_proxy": {}}
    try:
        for r in range(args.rounds):
            # Direct to the origin: the floor the proxies are compared with.
            d = bench(["steady", "--rate", "10000", "--duration", str(args.duration), "--connections", STEADY_CONNECTIONS,
                       f"http://127.0.0.1:{origin_port}/pets/1"], os.path.join(work, "direct.json"))
            rounds["steady"].setdefault("direct", []).append(d)
            for server in servers():
                with server:
                    url = f"http://127.0.0.1:{server.port}"
                    s = bench(["steady", "--rate", "10000", "--duration", str(args.duration), "--connections",
                               STEADY_CONNECTIONS, f"{url}/pets/1"], os.path.join(work, "s.json"))
                    rounds["steady"].setdefault(server.name, []).append(s)
                    for key, path in (("max_mock", "/health"), ("max_proxy", "/pets/1")):
                        before = cpu_ticks(server.pids())
                        m = bench(["max", "--duration", "10", "--connections", "64", f"{url}{path}"],
                                  os.path.join(work, "m.json"))
                        m["cpu_us_per_req"] = (cpu_ticks(server.pids()) - before) / TICKS * 1e6 / max(m["completed"], 1)
                        rounds[key].setdefault(server.name, []).append(m)
                    print(f"round {r + 1} {server.name}: steady p50 {s['latency_us']['p50']} p99 "
                          f"{s['latency_us']['p99']} us; max mock {rounds['max_mock'][server.name][-1]['achieved_rate']:.0f}/s "
                          f"proxy {rounds['max_proxy'][server.name][-1]['achieved_rate']:.0f}/s", flush=True)
        # Scenarios 2 and 3: the throttled stage, gateway and nginx limit_req.
        with open(os.path.join(work, "throttled.yaml"), "w") as f:
            f.write(THROTTLED)
        limited = os.path.join(work, "limited.bin")
        subprocess.run([os.path.join(BIN, "controlctl"), "compile", "-f", os.path.join(work, "throttled.yaml"), "-o",
                        limited], check=True, stdout=subprocess.DEVNULL)
        limits = {}
        for name in ("gateway", "nginx"):
            port = free_port()
            if name == "gateway":
                cmd = [os.path.join(BIN, "dataplane"), "--shards", "1", "--listen", f"127.0.0.1:{port}", "--admin",
                       f"127.0.0.1:{free_port()}", "--table", limited]
            else:
                with open(os.path.join(work, "nginx-limited.conf"), "w") as f:
                    f.write(NGINX_LIMITED % {"dir": work, "port": port})
                with open(os.path.join(work, "health.txt"), "w") as f:
                    f.write("ok")
                cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", os.path.join(work, "nginx-limited.conf"),
                       "-g", "daemon off;"]
            with Server(name, cmd, port):
                url = f"http://127.0.0.1:{port}/health"
                burst = bench(["burst", "--requests", "6000", "--connections", "200", url], os.path.join(work, "b.json"))
                time.sleep(1)  # refill completely before the overload
                over = bench(["steady", "--rate", "20000", "--duration", str(args.duration), "--connections", "64",
                              url], os.path.join(work, "o.json"))
                limits[name] = {"burst": burst, "overload": over}
                print(f"{name}: burst admitted {burst['status']['2xx']} / 429 {burst['status']['429']}; overload "
                      f"admitted {over['status']['2xx']} of {over['completed']}", flush=True)
        # Scenario 5: idle connections.
        port = free_port()
        gw = subprocess.Popen(["taskset", "-c", SERVER_CPU, os.path.join(BIN, "dataplane"), "--shards", "1",
                               "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}", "--table",
                               table, "--idle-timeout-secs", "600"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        wait_port(port)
        time.sleep(0.3)
        rss_before = rss_kib(gw.pid)
        socks = idle_connections(port, 10_000)
        time.sleep(1)
        rss_after = rss_kib(gw.pid)
        for s in socks:
            s.close()
        gw.terminate()
        gw.wait()
    finally:
        origin.terminate()
        origin.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    summary = {"limits": {n: {"burst_2xx": v["burst"]["status"]["2xx"], "burst_429": v["burst"]["status"]["429"],
                              "burst_other": v["burst"]["completed"] - v["burst"]["status"]["2xx"]
                              - v["burst"]["status"]["429"],
                              "burst_seconds": v["burst"]["elapsed_s"],
                              "overload_offered_rate": v["overload"]["achieved_rate"],
                              "overload_2xx": v["overload"]["status"]["2xx"],
                              "overload_2xx_per_second": [x["2xx"] for x in v["overload"]["per_second"]]}
                          for n, v in limits.items()},
               "steady": {}, "max": {}, "idle": {"rss_before_kib": rss_before, "rss_10k_idle_kib": rss_after,
                                                 "per_connection_bytes": (rss_after - rss_before) * 1024 / 10_000}}
    for name, runs in rounds["steady"].items():
        summary["steady"][name] = {
            "achieved_rate": med(x["achieved_rate"] for x in runs),
            "p50_us": med(x["latency_us"]["p50"] for x in runs),
            "p90_us": med(x["latency_us"]["p90"] for x in runs),
            "p99_us": med(x["latency_us"]["p99"] for x in runs),
            "p99_9_us": med(x["latency_us"]["p99_9"] for x in runs),
            "non_2xx": sum(x["completed"] - x["status"]["2xx"] for x in runs),
        }
    for key in ("max_mock", "max_proxy"):
        for name, runs in rounds[key].items():
            summary["max"].setdefault(key, {})[name] = {
                "rps": med(x["achieved_rate"] for x in runs),
                "cpu_us_per_req": med(x["cpu_us_per_req"] for x in runs),
            }
    date, commit = run_id()
    direct = summary["steady"]["direct"]
    lines = [f"# Baseline: 10,000 req/s and max throughput beside nginx and HAProxy, {date}, commit {commit}", "",
             f"Servers on cpu {SERVER_CPU} (one worker/shard each); `bench` and the origin on cpu {LOAD_CPU}; "
             f"{args.rounds} alternating rounds, medians. Command: `perf/baseline.py`.", "",
             f"## 1. 10,000 req/s open loop for {args.duration} s through the proxy route", "",
             "| target | achieved req/s | p50 us | p90 us | p99 us | p99.9 us | added p50 us | added p99 us | non-2xx |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in summary["steady"].items():
        added50 = s["p50_us"] - direct["p50_us"] if name != "direct" else 0
        added99 = s["p99_us"] - direct["p99_us"] if name != "direct" else 0
        lines.append(f"| {name} | {s['achieved_rate']:.0f} | {s['p50_us']:.0f} | {s['p90_us']:.0f} | {s['p99_us']:.0f} | "
                     f"{s['p99_9_us']:.0f} | {added50:.0f} | {added99:.0f} | {s['non_2xx']} |")
    lines += ["", "## 4. Closed-loop maximum (64 connections, 10 s)", "",
              "| route | server | req/s | cpu us/req | cpu vs nginx |", "|---|---|---:|---:|---:|"]
    for key, label in (("max_mock", "MOCK"), ("max_proxy", "proxy")):
        nginx_cpu = summary["max"][key]["nginx"]["cpu_us_per_req"]
        for name, m in summary["max"][key].items():
            lines.append(f"| {label} | {name} | {m['rps']:.0f} | {m['cpu_us_per_req']:.2f} | "
                         f"{nginx_cpu / m['cpu_us_per_req']:.2f}x |")
    idle = summary["idle"]
    lines += ["", "## 5. 10,000 idle keep-alive connections", "",
              f"Data plane RSS {idle['rss_before_kib'] / 1024:.1f} MiB before, {idle['rss_10k_idle_kib'] / 1024:.1f} MiB "
              f"with 10,000 idle connections (each served one request first): "
              f"{idle['per_connection_bytes']:.0f} bytes per connection.", "",
              ""]
    lines += ["## 2. Burst: 6,000 at once from idle against 10,000/s, burst 5,000", "",
              "The bucket refills while the burst is being answered, so the exact figure is 5,000 plus 10,000/s "
              "times the time the burst took (first send to last answer, as the generator saw it).", "",
              "| server | admitted (2xx) | 429 | other | burst took ms | exact expectation | admitted vs exact |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, l in summary["limits"].items():
        expected = min(6000, 5000 + 10_000 * l["burst_seconds"])
        lines.append(f"| {name} | {l['burst_2xx']} | {l['burst_429']} | {l['burst_other']} | "
                     f"{l['burst_seconds'] * 1000:.1f} | {expected:.0f} | {(l['burst_2xx'] - expected) / expected * 100:+.2f}% |")
    lines += ["", f"## 3. Overload: 20,000 req/s offered for {args.duration} s against 10,000/s, burst 5,000", "",
              "| server | offered req/s (achieved by the generator) | admitted | admitted per second (2xx) |",
              "|---|---:|---:|---|"]
    for name, l in summary["limits"].items():
        per = ", ".join(str(x) for x in l["overload_2xx_per_second"])
        lines.append(f"| {name} | {l['overload_offered_rate']:.0f} | {l['overload_2xx']} | {per} |")
    lines.append("")
    base = write_results("baseline", date, commit, lines, {"summary": summary})
    svg_chart(summary, base + ".svg")


if __name__ == "__main__":
    main()
