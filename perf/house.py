#!/usr/bin/env python3
"""What the move into layers cost (issue 12): CPU per request and throughput of the data
plane before and after, beside nginx.

Three builds of the gateway: --before (the commit before this work), --fixes (after the
security fixes of issue 18, which add one MSG_PEEK per reused upstream connection, and
before the move into layers), and this commit; each built once into target/perf-baseline/.
Each serves a MOCK route and a proxied one (origin on cpu 1); nginx serves the same (a static
file, proxy_pass with keepalive) for scale.

Server on cpu 0 (1 shard / 1 worker), `bench max` (closed loop, 64 connections) on cpu 1;
alternating rounds; each gateway run paired with the --before run of the same round; medians.

  perf/house.py [--rounds 5] [--duration 10] [--before COMMIT] [--fixes COMMIT] [--skip-build]
Writes perf/results/<date>-<commit>-house.{md,json}.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline import BIN, gateway_rounds, paired_table  # noqa: E402
from harness import (Server, build_release, compile_table, ensure_tools, free_port, nginx_server,  # noqa: E402
                     run_id, write_results)
from observability import MANIFEST, NGINX, build_baseline, work_and_origin  # noqa: E402

BEFORE = "96a06a1"
FIXES = "a0c0c37"


def gateway(dataplane, controlctl, work, tag, origin):
    table = compile_table(work, tag, MANIFEST % {"origin": origin, "log": ""}, controlctl)
    port = free_port()
    return Server("gateway", [dataplane, "--shards", "1", "--io-driver", "uring", "--listen", f"127.0.0.1:{port}",
                              "--admin", f"127.0.0.1:{free_port()}", "--table", table], port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--before", default=BEFORE)
    ap.add_argument("--fixes", default=FIXES)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    if not args.skip_build:
        build_release()
    before = build_baseline(args.before)
    fixes = build_baseline(args.fixes)
    current = (os.path.join(BIN, "dataplane"), os.path.join(BIN, "controlctl"))
    work, origin_port, origin = work_and_origin("gw-house-")
    before_name = f"gateway {args.before} (before)"
    configs = {
        before_name: lambda: gateway(*before, work, "before", origin_port),
        f"gateway {args.fixes} (security fixes)": lambda: gateway(*fixes, work, "fixes", origin_port),
        "gateway, layered (this commit)": lambda: gateway(*current, work, "layered", origin_port),
        "nginx": lambda: nginx_server(work, "nginx", NGINX, origin=origin_port, log="access_log off;"),
    }
    runs = gateway_rounds(configs, args.rounds, args.duration, work, origin)

    summary, table = paired_table(runs, before_name)
    date, commit = run_id()
    lines = [f"# The move into layers: cost, {date}, commit {commit}", "",
             f"Server on cpu 0 (1 shard / 1 worker), `bench max` with 64 connections on cpu 1, {args.duration} s x "
             f"{args.rounds} alternating rounds, medians; ratios pair each run with the {args.before} run of the "
             f"same round (above 0% costs more). {args.fixes} adds the issue-18 fixes (a MSG_PEEK per reused "
             f"upstream connection, dot-segment checks) to {args.before}; this commit adds the move into layers, "
             f"the one response writer and the phase modules. Command: "
             f"`perf/house.py --rounds {args.rounds} --duration {args.duration}`.", ""] + table
    write_results("house", date, commit, lines + [""], summary)


if __name__ == "__main__":
    main()
