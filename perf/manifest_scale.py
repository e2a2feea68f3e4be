#!/usr/bin/env python3
"""Validation time against manifest size (issue 18 item 8): is it linear, and does the control
plane keep answering while it validates?

A release control plane; each manifest is sent with `controlctl apply --dry-run` (gRPC, YAML
parsing, validation, compilation: all but the fsync) at 1, 2, 5 and 10 times the sizes the
issue reported as pathological:
  - `undefined`: routes each naming a stage variable the stage does not set (20,000 routes
    took 116 s to be refused before; every one of the errors is reported);
  - `routes`: valid routes (100,000 got no answer within 600 s in the issue's variant);
  - `nested`: a 300 KB document of nested `[` (147 s before), refused by the nesting bound.
Meanwhile a second client runs `controlctl status` in a loop; its slowest answer during each
apply shows whether the control plane stalled.

Writes perf/results/<date>-<commit>-manifest-scale.{md,json}. Usage:
  perf/manifest_scale.py [--factors 1,2,5,10] [--skip-build]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, free_port, run_id, wait_port, write_results  # noqa: E402

STAGE = "---\nkind: Stage\napi: big\nname: prod\n"


def undefined(n):
    routes = "\n".join(f'  GET /r{i}: {{ integration: {{ type: HTTP_PROXY, uri: "http://${{stageVariables.v{i}}}/x" }} }}'
                       for i in range(n))
    return f"kind: Api\nname: big\nroutes:\n{routes}\n{STAGE}", n


def routes(n):
    body = "\n".join(f"  GET /svc{i % 97}/res{i}: {{ integration: {{ type: MOCK, response: {{ body: r{i} }} }} }}"
                     for i in range(n))
    return f"kind: Api\nname: big\nroutes:\n{body}\n{STAGE}", n


def nested(size):
    depth = size // 2
    return f"kind: Api\nname: big\nroutes:\n  GET /x: {'[' * depth}{']' * depth}\n{STAGE}", size


SCENARIOS = {"undefined": (undefined, 20_000, "routes"), "routes": (routes, 100_000, "routes"),
             "nested": (nested, 300_000, "bytes")}


class StatusProbe:
    """Runs `controlctl status` in a loop and keeps the slowest answer since the last reset."""

    def __init__(self, ctl):
        self.ctl, self.slowest, self.stop = ctl, 0.0, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            started = time.monotonic()
            subprocess.run(self.ctl + ["status"], capture_output=True, check=False)
            self.slowest = max(self.slowest, time.monotonic() - started)
            time.sleep(0.05)

    def take(self):
        slowest, self.slowest = self.slowest, 0.0
        return slowest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--factors", default="1,2,5,10")
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    factors = [int(f) for f in args.factors.split(",")]
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "controlplane"], cwd=ROOT, check=True)
    bin_dir = os.path.join(ROOT, "target", "release")
    work = tempfile.mkdtemp(prefix="gw-manifest-scale-")
    port = free_port()
    cp = subprocess.Popen([os.path.join(bin_dir, "controlplane"), "--listen", f"127.0.0.1:{port}", "--data-dir",
                           os.path.join(work, "cp")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    ctl = [os.path.join(bin_dir, "controlctl"), "--server", f"http://127.0.0.1:{port}"]
    probe = StatusProbe(ctl)
    results = []
    try:
        for name, (make, base, unit) in SCENARIOS.items():
            for factor in factors:
                text, size = make(base * factor)
                path = os.path.join(work, f"{name}-{factor}.yaml")
                with open(path, "w") as f:
                    f.write(text)
                probe.take()
                started = time.monotonic()
                done = subprocess.run(ctl + ["apply", "--dry-run", "-f", path], capture_output=True, text=True)
                seconds = time.monotonic() - started
                errors = sum(1 for line in done.stderr.splitlines() if line.startswith("error: "))
                results.append({"scenario": name, "factor": factor, "size": size, "unit": unit,
                                "manifest_bytes": len(text), "seconds": seconds, "exit": done.returncode,
                                "errors": errors, "status_slowest_s": probe.take()})
                print(results[-1], flush=True)
                os.remove(path)
    finally:
        probe.stop = True
        cp.terminate()
        cp.wait()
        shutil.rmtree(work, ignore_errors=True)

    date, commit = run_id()
    lines = [f"# Manifest validation time against size, {date}, commit {commit}", "",
             "Release control plane on this 2-core machine; `controlctl apply --dry-run` (gRPC, YAML parsing, "
             "validation, compilation; no fsync) of each manifest once, at the factors of the issue's sizes. "
             "`per 1x` divides the time by the factor: flat means linear. `status` is the slowest "
             "`controlctl status` answered by the same control plane meanwhile (a process start included). "
             "Command: `perf/manifest_scale.py`.", "",
             "| scenario | size | manifest | exit | errors reported | seconds | per 1x | slowest status during it |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['scenario']} | {r['size']:,} {r['unit']} | {r['manifest_bytes'] / 1e6:.1f} MB | "
                     f"{r['exit']} | {r['errors']:,} | {r['seconds']:.2f} | {r['seconds'] / r['factor']:.2f} | "
                     f"{r['status_slowest_s'] * 1000:.0f} ms |")
    lines.append("")
    write_results("manifest-scale", date, commit, lines, {"results": results})


if __name__ == "__main__":
    main()
