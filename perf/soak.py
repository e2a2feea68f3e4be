#!/usr/bin/env python3
"""Soak (issue 13): a steady rate through the proxy route for a long time while the control
plane swaps the table every few seconds. Per minute: the data plane's RSS, open file
descriptors, upstream connections, buffered bytes, and the load's p50/p99/max latency and
errors. The expectation: everything flat.

A release control plane and a 1-shard data plane on cpu 0 following it; the bench origin
and `bench steady` on cpu 1. The load runs in one-minute segments back to back (each its own
latency histogram); a thread applies a manifest whose MOCK body changes every --swap-secs.

  perf/soak.py [--minutes 10] [--rate 10000] [--swap-secs 5] [--skip-build]
Writes perf/results/<date>-<commit>-soak.{md,json,svg}.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOAD_CPU, ROOT, SERVER_CPU, build_release, control_plane_link, free_port, run_id,  # noqa: E402
                     wait_port, write_results)

BIN = os.path.join(ROOT, "target", "release")

MANIFEST = """kind: Api
name: soak
routes:
  GET /pets/{id}:
    integration: { type: HTTP_PROXY, uri: "http://127.0.0.1:%(origin)d/pets/{id}" }
  GET /version:
    integration: { type: MOCK, response: { body: "v%(version)d" } }
---
kind: Stage
api: soak
name: prod
---
kind: Domain
name: 127.0.0.1
mappings:
  - { basePath: "", api: soak, stage: prod }
"""


def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def svg(minutes, path):
    """Four small line charts over the minutes: RSS, descriptors, upstream connections, p99."""
    panels = [("RSS (MiB)", "rss_mib"), ("open fds", "fds"), ("upstream conns (idle)", "upstream_idle"),
              ("p99 (ms)", "p99_ms")]
    w, h, pad = 360, 160, 36
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{2 * h}" '
             'font-family="sans-serif" font-size="11">']
    for i, (title, key) in enumerate(panels):
        ox, oy = (i % 2) * w, (i // 2) * h
        values = [m[key] for m in minutes]
        top = max(values + [1e-9]) * 1.2
        n = max(len(values) - 1, 1)
        points = " ".join(f"{ox + pad + (w - 2 * pad) * j / n:.1f},{oy + h - pad - (h - 2 * pad) * v / top:.1f}"
                          for j, v in enumerate(values))
        parts.append(f'<text x="{ox + pad}" y="{oy + 16}">{title}: {min(values):.1f} to {max(values):.1f}</text>')
        parts.append(f'<line x1="{ox + pad}" y1="{oy + h - pad}" x2="{ox + w - pad}" y2="{oy + h - pad}" stroke="#999"/>')
        parts.append(f'<text x="{ox + pad}" y="{oy + h - pad + 14}">minute 1</text>')
        parts.append(f'<text x="{ox + w - pad - 50}" y="{oy + h - pad + 14}">minute {len(values)}</text>')
        parts.append(f'<polyline fill="none" stroke="#36c" stroke-width="2" points="{points}"/>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--swap-secs", type=float, default=5.0)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    if not args.skip_build:
        build_release()
    work = tempfile.mkdtemp(prefix="gw-soak-")
    cp_port, dp_port, admin, origin_port = free_port(), free_port(), free_port(), free_port()
    procs = []

    def start(cmd, cpu):
        p = subprocess.Popen(["taskset", "-c", cpu] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    start([os.path.join(BIN, "origin"), "--listen", f"127.0.0.1:{origin_port}", "--body-bytes", "64"], LOAD_CPU)
    start([os.path.join(BIN, "controlplane"), "--listen", f"127.0.0.1:{cp_port}", "--data-dir",
           os.path.join(work, "cp")], LOAD_CPU)
    wait_port(origin_port)
    wait_port(cp_port)
    link = control_plane_link(os.path.join(work, "cp"), cp_port)
    dp = start([os.path.join(BIN, "dataplane"), "--shards", "1", "--listen", f"127.0.0.1:{dp_port}", "--admin",
                f"127.0.0.1:{admin}", *link, "--state-dir", os.path.join(work, "dp")], SERVER_CPU)
    wait_port(admin)
    ctl = [os.path.join(BIN, "controlctl"), "--server", f"https://127.0.0.1:{cp_port}"]
    manifest_path = os.path.join(work, "soak.yaml")

    def apply(version):
        with open(manifest_path, "w") as f:
            f.write(MANIFEST % {"origin": origin_port, "version": version})
        return subprocess.run(ctl + ["apply", "-f", manifest_path], capture_output=True).returncode == 0

    assert apply(0), "the first apply failed"
    deadline = time.monotonic() + 20
    while metric(admin, "gateway_table_version") < 1:
        assert time.monotonic() < deadline, "the data plane never got its table"
        time.sleep(0.1)
    stop = threading.Event()
    swaps = {"applied": 0, "failed": 0}

    def swapper():
        version = 1
        while not stop.wait(args.swap_secs):
            swaps["applied" if apply(version) else "failed"] += 1
            version += 1

    threading.Thread(target=swapper, daemon=True).start()
    minutes = []
    try:
        for minute in range(1, args.minutes + 1):
            report = os.path.join(work, "minute.json")
            subprocess.run(["taskset", "-c", LOAD_CPU, os.path.join(BIN, "bench"), "steady", "--rate",
                            str(args.rate), "--duration", "60", "--connections", "64", "--json", report,
                            f"http://127.0.0.1:{dp_port}/pets/{minute}"], check=True, stdout=subprocess.DEVNULL)
            with open(report) as f:
                r = json.load(f)
            fds = len(os.listdir(f"/proc/{dp.pid}/fd"))
            m = {"minute": minute, "completed": r["completed"], "2xx": r["status"]["2xx"],
                 "errors": r["scheduled"] - r["status"]["2xx"], "p50_ms": r["latency_us"]["p50"] / 1000,
                 "p99_ms": r["latency_us"]["p99"] / 1000, "max_ms": r["latency_us"]["max"] / 1000,
                 "service_p99_ms": r["service_us"]["p99"] / 1000, "service_max_ms": r["service_us"]["max"] / 1000,
                 "lag_max_ms": r["schedule_lag_us"]["max"] / 1000,
                 "rss_mib": rss_mib(dp.pid), "fds": fds,
                 "upstream_idle": metric(admin, "gateway_upstream_pool_idle_connections"),
                 "upstream_opened": metric(admin, "gateway_upstream_connections_opened_total"),
                 "buffered_kib": metric(admin, "gateway_memory_buffered_bytes") / 1024,
                 "table_version": metric(admin, "gateway_table_version")}
            minutes.append(m)
            print(m, flush=True)
    finally:
        stop.set()
        for p in reversed(procs):
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)

    date, commit = run_id()
    lines = [f"# Soak, {date}, commit {commit}", "",
             f"{args.rate:,} req/s (`bench steady`, 64 connections) through the proxy route for {args.minutes} "
             f"minute(s), one-minute segments back to back; the table swapped every {args.swap_secs:g} s "
             f"({swaps['applied']} swaps applied, {swaps['failed']} failed). Data plane: 1 shard on cpu 0 "
             "following a release control plane; origin and load on cpu 1. Values at the end of each "
             f"minute. Chart: `{date}-{commit}-soak.svg`. Command: `perf/soak.py --minutes {args.minutes} "
             f"--rate {args.rate}`.", "",
             "Latency is from each request's scheduled time (open loop); `service` is from when it was sent, "
             "and `lag` is how late the generator itself was (it shares cpu 1 with the origin and the control "
             "plane's compiles).", "",
             "| minute | completed | errors | p50 ms | p99 ms | max ms | service p99 ms | service max ms | "
             "lag max ms | RSS MiB | fds | upstream idle | upstream opened | buffered KiB | table version |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in minutes:
        lines.append(f"| {m['minute']} | {m['completed']:,} | {m['errors']} | {m['p50_ms']:.2f} | "
                     f"{m['p99_ms']:.2f} | {m['max_ms']:.2f} | {m['service_p99_ms']:.2f} | "
                     f"{m['service_max_ms']:.2f} | {m['lag_max_ms']:.2f} | {m['rss_mib']:.1f} | {m['fds']} | "
                     f"{m['upstream_idle']:.0f} | {m['upstream_opened']:.0f} | {m['buffered_kib']:.0f} | "
                     f"{m['table_version']:.0f} |")
    base = write_results("soak", date, commit, lines + [""], {"minutes": minutes, "swaps": swaps,
                                                               "rate": args.rate})
    svg(minutes, base + ".svg")


if __name__ == "__main__":
    main()
