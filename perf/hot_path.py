#!/usr/bin/env python3
"""What the hardening of the request path cost: CPU per request and throughput of this commit
against an earlier one, beside nginx, on a MOCK route and a proxied one.

This session's changes on the hot path: every buffer charged to the shard's memory budget
(a few relaxed atomics per request), the strict grammar (a scan of each head for bare LF,
the method registry, the target's form) and backpressure on pipelined responses.

Server on cpu 0 (1 shard / 1 worker), `bench max` (closed loop, 64 connections) on cpu 1;
alternating rounds; each run paired with the earlier commit's run of the same round; medians.

  perf/hot_path.py --against COMMIT [--rounds 5] [--duration 8] [--skip-build]
Writes perf/results/<date>-<commit>-hot-path.{md,json}.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline import BIN, gateway_rounds, paired_table  # noqa: E402
from harness import build_release, ensure_tools, nginx_server, run_id, write_results  # noqa: E402
from house import gateway  # noqa: E402
from observability import NGINX, build_baseline, work_and_origin  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    if not args.skip_build:
        build_release()
    before = build_baseline(args.against)
    current = (os.path.join(BIN, "dataplane"), os.path.join(BIN, "controlctl"))
    work, origin_port, origin = work_and_origin("gw-hot-path-")
    before_name = f"gateway {args.against} (before)"
    configs = {
        before_name: lambda: gateway(*before, work, "before", origin_port),
        "gateway (this commit)": lambda: gateway(*current, work, "current", origin_port),
        "nginx": lambda: nginx_server(work, "nginx", NGINX, origin=origin_port, log="access_log off;"),
    }
    runs = gateway_rounds(configs, args.rounds, args.duration, work, origin)
    summary, table = paired_table(runs, before_name)
    date, commit = run_id()
    lines = [f"# The hardened request path: cost, {date}, commit {commit}", "",
             f"Server on cpu 0 (1 shard / 1 worker), `bench max` with 64 connections on cpu 1, {args.duration} s x "
             f"{args.rounds} alternating rounds, medians; ratios pair each run with the {args.against} run of the "
             "same round (above 0% costs more). This commit adds the shard memory budget, backpressure on "
             "pipelined responses, the strict request grammar (bare LF scan, method registry, target forms) and "
             f"the connection cap. Command: `perf/hot_path.py --against {args.against} --rounds {args.rounds} "
             f"--duration {args.duration}`.", ""] + table
    write_results("hot-path", date, commit, lines + [""], summary)


if __name__ == "__main__":
    main()
