#!/usr/bin/env python3
"""What throttling costs and how exact it is, beside nginx `limit_req`, on this machine.

1. cost: closed-loop throughput and CPU per request on the server's core (cpu 0; `bench` on
   cpu 1) for a MOCK answer with no limit, with account + stage + method buckets, and with
   an API key whose plan adds a per-key and a per-key-per-method bucket and a quota (SHA-256
   of the key, key lookup, five buckets, one quota CAS) -- every limit set far above the load
   so nothing is refused. nginx serves a static file without and with a `limit_req` zone.
   Alternating rounds; medians.
2. accuracy: a limit of 1,000/s with burst 500. From idle, a burst of 1,500 (burst + 1,000);
   then 2x the rate for --duration seconds on 1 connection and on 64. Expected admitted:
   the burst, and burst + rate x (duration - 1/offered rate). The gateway runs 2 shards (on
   the one server core, so they still share the buckets across threads).

  perf/throttle.py [--rounds 5] [--duration 10] [--skip-build]
Writes perf/results/<date>-<commit>-throttle.{md,json}.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline import BIN, bench  # noqa: E402
from harness import (TICKS, Server, build_release, compile_table, cpu_ticks, ensure_tools,  # noqa: E402
                     free_port, nginx_server, run_id, write_results)

KEY = "perf-key-0123456789abcdef0123"
HIGH = "{ rate: 100000000, burst: 100000000 }"


def manifest(limits, keyed, rate_burst=None):
    """The MOCK route /health; `limits`: account, stage and method throttles at HIGH; `keyed`:
    the route needs KEY, whose plan has HIGH throttles and a quota; `rate_burst`: only a
    stage throttle with these numbers (accuracy runs)."""
    account = f"throttle: {HIGH}" if limits else ""
    method = f"throttle: {HIGH}" if limits else ""
    stage = f"throttle: {HIGH}" if limits else ""
    if rate_burst:
        stage = "throttle: { rate: %d, burst: %d }" % rate_burst
    text = f"""kind: Account
{account}
---
kind: Api
name: bench
routes:
  GET /health:
    apiKeyRequired: {str(keyed).lower()}
    integration: {{ type: MOCK, response: {{ status: 200, body: ok }} }}
    {method}
---
kind: Stage
api: bench
name: prod
{stage}
---
kind: Domain
name: 127.0.0.1
mappings:
  - {{ basePath: "", api: bench, stage: prod }}
"""
    if keyed:
        text += f"""---
kind: UsagePlan
name: plan
stages: [bench/prod]
throttle: {HIGH}
methodThrottle: {{ bench/prod: {{ GET /health: {HIGH} }} }}
quota: {{ limit: 900000000000, period: MONTH }}
---
kind: ApiKey
name: perf
plan: plan
value: {KEY}
"""
    return text


NGINX = """
worker_processes 1;
pid %(dir)s/nginx-%(tag)s.pid;
error_log %(dir)s/error-%(tag)s.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  limit_req_zone $binary_remote_addr zone=z:1m rate=%(rate)dr/s;
  server {
    listen 127.0.0.1:%(port)d reuseport;
    location = /health { %(limit)s root %(dir)s; try_files /health.txt =404; }
  }
}
"""


def gateway(table, shards=1):
    port = free_port()
    return Server("gateway", [os.path.join(BIN, "dataplane"), "--shards", str(shards), "--io-driver", "uring",
                              "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}", "--table",
                              table], port)


def nginx(work, tag, rate, burst):
    limit = f"limit_req zone=z burst={burst} nodelay; limit_req_status 429;" if burst is not None else ""
    return nginx_server(work, tag, NGINX, rate=rate, limit=limit)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    if not args.skip_build:
        build_release()
    work = tempfile.mkdtemp(prefix="gw-throttle-")
    os.chmod(work, 0o755)
    with open(os.path.join(work, "health.txt"), "w") as f:
        f.write("ok")
    key_header = ["-H", f"x-api-key: {KEY}"]
    configs = [
        ("gateway, no limits", lambda: gateway(compile_table(work, "off", manifest(False, False))), []),
        ("gateway, account + stage + method", lambda: gateway(compile_table(work, "on", manifest(True, False))), []),
        ("gateway, + API key plan, per-method and quota",
         lambda: gateway(compile_table(work, "keyed", manifest(True, True))), key_header),
        ("nginx, no limit_req", lambda: nginx(work, "off", 100000000, None), []),
        ("nginx, limit_req", lambda: nginx(work, "on", 100000000, 100000000), []),
    ]
    cost = {name: [] for name, _, _ in configs}
    accuracy = {}
    try:
        for r in range(args.rounds):
            for name, server, extra in configs:
                with server() as s:
                    before = cpu_ticks(s.pids())
                    m = bench(["max", "--duration", str(args.duration), "--connections", "64"] + extra
                              + [f"http://127.0.0.1:{s.port}/health"], os.path.join(work, "m.json"))
                    m["cpu_us_per_req"] = (cpu_ticks(s.pids()) - before) / TICKS * 1e6 / max(m["completed"], 1)
                    assert m["status"]["2xx"] == m["completed"], f"{name}: refused requests {m['status']}"
                    cost[name].append(m)
                    print(f"round {r + 1} {name}: {m['achieved_rate']:.0f}/s, {m['cpu_us_per_req']:.2f} us/req",
                          flush=True)
        rate, burst = 1000, 500
        limited = compile_table(work, "limited", manifest(False, False, (rate, burst)))
        for name, server in (("gateway (2 shards)", lambda: gateway(limited, 2)),
                             ("nginx limit_req", lambda: nginx(work, "acc", rate, burst))):
            runs = {}
            with server() as s:
                url = f"http://127.0.0.1:{s.port}/health"
                runs["burst"] = bench(["burst", "--requests", str(burst + 1000), "--connections", "64", url],
                                      os.path.join(work, "b.json"))
                for connections in ("1", "64"):
                    time.sleep(burst / rate + 0.5)  # a full bucket again
                    runs[f"overload_{connections}"] = bench(
                        ["steady", "--rate", str(2 * rate), "--duration", str(args.duration), "--connections",
                         connections, url], os.path.join(work, "o.json"))
            accuracy[name] = runs
            print(f"{name}: burst {runs['burst']['status']['2xx']}, overload on 1 "
                  f"{runs['overload_1']['status']['2xx']}, on 64 {runs['overload_64']['status']['2xx']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    def paired(name, metric):
        """Median over rounds of this config's metric over its peer's no-limit run in the same
        round: runs minutes apart on this noisy machine differ by more than the effect."""
        base = cost["gateway, no limits" if name.startswith("gateway") else "nginx, no limit_req"]
        return med(x[metric] / b[metric] for x, b in zip(cost[name], base))

    summary = {"cost": {n: {"rps": med(x["achieved_rate"] for x in v),
                            "cpu_us_per_req": med(x["cpu_us_per_req"] for x in v),
                            "rps_vs_no_limit": paired(n, "achieved_rate"),
                            "cpu_vs_no_limit": paired(n, "cpu_us_per_req"),
                            "rps_rounds": [round(x["achieved_rate"]) for x in v],
                            "cpu_rounds": [round(x["cpu_us_per_req"], 2) for x in v]} for n, v in cost.items()},
               "accuracy": {n: {k: {"offered": v["completed"], "admitted": v["status"]["2xx"],
                                    "refused": v["status"]["429"]} for k, v in runs.items()}
                            for n, runs in accuracy.items()}}
    expected_over = burst + rate * (args.duration - 1 / (2 * rate))
    date, commit = run_id()
    lines = [f"# Throttling: cost and accuracy beside nginx limit_req, {date}, commit {commit}", "",
             f"Server on cpu 0, `bench` on cpu 1. Command: `perf/throttle.py --rounds {args.rounds} "
             f"--duration {args.duration}`.", "",
             f"## Cost: closed loop, 64 connections, {args.duration} s x {args.rounds} alternating rounds, medians", "",
             "Every limit is far above the load, so nothing is refused: this is the price of checking. "
             "The ratios pair each run with its server's no-limit run of the same round.", "",
             "| server | req/s | req/s vs no limit | CPU us/req | CPU vs no limit | rounds req/s | rounds CPU us/req |",
             "|---|---|---|---|---|---|---|"]
    for name, v in summary["cost"].items():
        lines.append(f"| {name} | {v['rps']:.0f} | {v['rps_vs_no_limit'] - 1:+.1%} | {v['cpu_us_per_req']:.2f} | "
                     f"{v['cpu_vs_no_limit'] - 1:+.1%} | {', '.join(str(x) for x in v['rps_rounds'])} | "
                     f"{', '.join(str(x) for x in v['cpu_rounds'])} |")
    lines += ["", f"## Accuracy: {rate}/s, burst {burst}", "",
              f"Expected: burst from idle {burst} of {burst + 1000}, plus what refills while the burst is "
              f"answered ({rate}/s); 2x for {args.duration} s admits {expected_over:.0f}.", "",
              "| server | burst admitted | error | 2x on 1 conn | error | 2x on 64 conns | error |",
              "|---|---|---|---|---|---|---|"]
    for name, runs in summary["accuracy"].items():
        b, o1, o64 = (runs[k]["admitted"] for k in ("burst", "overload_1", "overload_64"))
        lines.append(f"| {name} | {b} | {b / burst - 1:+.2%} | {o1} | {o1 / expected_over - 1:+.2%} | {o64} | "
                     f"{o64 / expected_over - 1:+.2%} |")
    write_results("throttle", date, commit, lines + [""], summary)


if __name__ == "__main__":
    main()
