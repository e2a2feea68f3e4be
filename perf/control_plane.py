#!/usr/bin/env python3
"""Config changes end to end: how long from `controlctl apply` to every shard serving the new
table, and what a swap costs a shard, at 10, 1,000 and 100,000 routes.

Starts a release control plane and a 2-shard data plane following it, then applies manifests
whose MOCK bodies change each round. For each apply it records the apply call itself (parse,
compile, fsync) and the wait until every shard acknowledged (`apply --wait` reports it), and
reads the data plane's longest swap (`gateway_table_swap_max_seconds`).

Writes perf/results/<date>-<commit>-control-plane.{md,json}. Usage:
  perf/control_plane.py [--rounds 10] [--skip-build]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, control_plane_link, free_port, run_id, wait_port, write_results  # noqa: E402


def manifest(routes, body):
    lines = ["kind: Api", "name: big", "routes:"]
    for i in range(routes):
        lines.append(f"  GET /svc{i % 97}/res{i}: {{ integration: {{ type: MOCK, response: {{ body: {body} }} }} }}")
    lines += ["---", "kind: Stage", "api: big", "name: prod", "---", "kind: Domain", "name: localhost",
              "mappings:", '  - { basePath: "", api: big, stage: prod }', ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "dataplane", "-p", "controlplane"],
                       cwd=ROOT, check=True)
    bin_dir = os.path.join(ROOT, "target", "release")
    work = tempfile.mkdtemp(prefix="gw-cp-perf-")
    cp_port, dp_port, admin_port = free_port(), free_port(), free_port()
    cp = subprocess.Popen([os.path.join(bin_dir, "controlplane"), "--listen", f"127.0.0.1:{cp_port}",
                           "--data-dir", os.path.join(work, "cp")], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    wait_port(cp_port)
    link = control_plane_link(os.path.join(work, "cp"), cp_port)
    dp = subprocess.Popen([os.path.join(bin_dir, "dataplane"), "--shards", "2", "--listen",
                           f"127.0.0.1:{dp_port}", "--admin", f"127.0.0.1:{admin_port}", *link,
                           "--state-dir", os.path.join(work, "dp")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(admin_port)
    ctl = [os.path.join(bin_dir, "controlctl"), "--server", f"https://127.0.0.1:{cp_port}"]
    for _ in range(100):
        if "connected" in subprocess.run(ctl + ["status"], capture_output=True, text=True).stdout:
            break
        time.sleep(0.05)
    results = {}
    try:
        for routes in (10, 1_000, 100_000):
            rounds = args.rounds if routes < 100_000 else max(3, args.rounds // 3)
            samples = []
            for r in range(rounds):
                path = os.path.join(work, f"m-{routes}-{r}.yaml")
                with open(path, "w") as f:
                    f.write(manifest(routes, f"r{r}"))
                started = time.monotonic()
                out = subprocess.run(ctl + ["apply", "-f", path, "--wait", "--timeout-secs", "120"],
                                     capture_output=True, text=True, check=True).stdout
                total_ms = (time.monotonic() - started) * 1000
                wait_ms = float(re.search(r"after (\d+) ms", out).group(1))
                samples.append({"total_ms": total_ms, "wait_ms": wait_ms, "apply_ms": total_ms - wait_ms})
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics").read().decode()
            swap = max(float(v) for v in re.findall(r"gateway_table_swap_max_seconds\{[^}]*\} ([\d.]+)", metrics))
            results[routes] = {
                "rounds": samples,
                "apply_ms_median": statistics.median(s["apply_ms"] for s in samples),
                "wait_ms_median": statistics.median(s["wait_ms"] for s in samples),
                "wait_ms_max": max(s["wait_ms"] for s in samples),
                "swap_max_ms": swap * 1000,
            }
            print(routes, results[routes]["apply_ms_median"], results[routes]["wait_ms_median"],
                  results[routes]["swap_max_ms"], flush=True)
    finally:
        dp.terminate()
        cp.terminate()
        dp.wait()
        cp.wait()
        shutil.rmtree(work, ignore_errors=True)

    date, commit = run_id()
    lines = [
        f"# Config changes end to end, {date}, commit {commit}",
        "",
        "Release control plane and a 2-shard data plane on this 2-core machine; `controlctl apply --wait` of a "
        "manifest whose MOCK bodies change each round. `apply` is the call itself (parse, validate, compile, "
        "verify, fsync, publish); `to every shard` is from its return until every shard acknowledged the new "
        "version (shards swap at their 100 ms sweeper tick); `swap` is the longest a shard spent swapping. "
        "Command: `perf/control_plane.py`.",
        "",
        "| routes | rounds | apply (median ms) | to every shard (median ms) | to every shard (max ms) | swap (max ms) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for routes, r in results.items():
        lines.append(f"| {routes:,} | {len(r['rounds'])} | {r['apply_ms_median']:.0f} | {r['wait_ms_median']:.0f} | "
                     f"{r['wait_ms_max']:.0f} | {r['swap_max_ms']:.3f} |")
    lines.append("")
    write_results("control-plane", date, commit, lines, {"results": results})


if __name__ == "__main__":
    main()
