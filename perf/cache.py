#!/usr/bin/env python3
"""The response cache beside nginx `proxy_cache`, on this machine.

Servers on cpu 0 (the gateway with one shard, nginx with one worker); `bench` and the origin
(`origin --body-bytes 1024`, counting what reaches it) on cpu 1. Keys are `/items?id={key}`,
drawn by `bench --keys N --zipf 1.0` (the same fixed sequence for both servers).

1. hits: 1,000 keys in a cache that holds them all; after a warm-up every request is a hit.
   Closed loop with 64 connections (req/s, CPU per request on the server's core), and open loop
   at 10,000 req/s (p50/p99 from the intended send time). Alternating rounds; medians.
2. capacity: 100,000 keys in 4 MiB (gateway `capacity: 4MiB`, nginx `max_size=4m` on tmpfs):
   the hit ratio the same capacity gives, from the origin's own count of requests that got
   past the cache, over a closed-loop run after a warm-up.
3. memory per entry: 50,000 uniform draws of 50,000 keys (about 31,600 distinct) stored in a large
   cache; the growth of the server's RSS (and, for nginx, its cache files on tmpfs) per entry.

  perf/cache.py [--rounds 3] [--duration 10] [--skip-build]
Writes perf/results/<date>-<commit>-cache.{md,json}.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline import BIN, bench, rss_kib  # noqa: E402
from harness import (LOAD_CPU, TICKS, Server, build_release, compile_table, cpu_ticks,  # noqa: E402
                     ensure_tools, free_port, nginx_server, run_id, wait_port, write_results)

BODY = 1024

MANIFEST = """
kind: Api
name: bench
routes:
  GET /items:
    integration: { type: HTTP_PROXY, uri: "http://127.0.0.1:%(origin)d/items" }
    cache: { keyParameters: [method.request.querystring.id] }
---
kind: Stage
api: bench
name: prod
cache: { enabled: true, capacity: %(capacity)s, ttl: 3600s }
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
  access_log off;
  # The cache manager's defaults delete 100 files per 200 ms, far behind this churn: let it
  # delete as many as it needs, often, so max_size means what it says.
  proxy_cache_path %(cache)s levels=1:2 keys_zone=c:%(zone)s max_size=%(max_size)s inactive=1h use_temp_path=off
                   manager_files=100000 manager_sleep=10ms manager_threshold=1000ms;
  upstream origin { server 127.0.0.1:%(origin)d; keepalive 64; }
  server {
    listen 127.0.0.1:%(port)d reuseport;
    location /items {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache c;
      proxy_cache_key $request_uri;
      proxy_cache_valid 200 1h;
      # Concurrent misses of one key wait for the first fetch, as the gateway's do.
      proxy_cache_lock on;
    }
  }
}
"""


def origin_requests(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/origin-requests", timeout=5) as r:
        return int(r.read())


def gateway(work, tag, origin, capacity):
    table = compile_table(work, tag, MANIFEST % {"origin": origin, "capacity": capacity})
    port, admin = free_port(), free_port()
    server = Server("gateway", [os.path.join(BIN, "dataplane"), "--shards", "1", "--io-driver", "uring",
                                "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--table",
                                table], port)
    server.admin = admin
    return server


def nginx(work, tag, origin, max_size, zone="64m"):
    cache = os.path.join("/dev/shm", f"gw-perf-cache-{os.getpid()}-{tag}")
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(cache)
    server = nginx_server(work, tag, NGINX, origin=origin, cache=cache, max_size=max_size, zone=zone)
    server.cache_dir = cache
    return server


def worker_pid(server):
    """The process that serves: nginx's worker (its master only forks), the gateway itself."""
    pids = server.pids()
    return pids[-1]


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def files_in(path):
    return sum(len(files) for _, _, files in os.walk(path))


def closed(url, keys, duration, work, extra=()):
    return bench(["max", "--duration", str(duration), "--connections", "64", "--keys", str(keys), *extra, url],
                 os.path.join(work, "m.json"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    if not args.skip_build:
        build_release()
    work = tempfile.mkdtemp(prefix="gw-cache-")
    os.chmod(work, 0o755)
    origin_port = free_port()
    origin = subprocess.Popen(["taskset", "-c", LOAD_CPU, os.path.join(BIN, "origin"), "--listen",
                               f"127.0.0.1:{origin_port}", "--body-bytes", str(BODY)], stdout=subprocess.DEVNULL)
    wait_port(origin_port)
    servers = {
        "gateway": lambda tag, size: gateway(work, tag, origin_port, size),
        "nginx proxy_cache": lambda tag, size: nginx(work, tag, origin_port, size.replace("MiB", "m")),
    }
    hits = {name: [] for name in servers}
    capacity = {}
    memory = {}
    try:
        # 1. Throughput and latency of hits.
        for r in range(args.rounds):
            for name, make in servers.items():
                with make("hits", "64MiB") as s:
                    url = f"http://127.0.0.1:{s.port}/items?id={{key}}"
                    closed(url, 1000, 3, work)  # every key stored
                    before_origin = origin_requests(origin_port)
                    before = cpu_ticks(s.pids())
                    m = closed(url, 1000, args.duration, work)
                    m["cpu_us_per_req"] = (cpu_ticks(s.pids()) - before) / TICKS * 1e6 / max(m["completed"], 1)
                    m["origin_requests"] = origin_requests(origin_port) - before_origin
                    o = bench(["steady", "--rate", "10000", "--duration", str(args.duration), "--connections", "8",
                               "--keys", "1000", url], os.path.join(work, "s.json"))
                    m["steady"] = o
                    hits[name].append(m)
                    print(f"round {r + 1} {name}: {m['achieved_rate']:.0f}/s, {m['cpu_us_per_req']:.2f} us/req, "
                          f"{m['origin_requests']} misses; steady p99 {o['latency_us']['p99']} us", flush=True)
        # 2. Hit ratio under the same capacity, and with the gateway given the memory nginx
        # actually held (its cache manager enforces max_size only every few seconds).
        runs = [("gateway", "4MiB"), ("nginx proxy_cache", "4MiB")]
        for name, size in runs + [("gateway", None)]:
            if size is None:
                held = capacity["nginx proxy_cache"]["held_bytes_mean"]
                size = f"{max(int(held) >> 20, 4)}MiB"
                label = f"gateway at nginx's mean footprint ({size})"
            else:
                label = name
            with servers[name]("capacity", size) as s:
                url = f"http://127.0.0.1:{s.port}/items?id={{key}}"
                closed(url, 100_000, args.duration, work)  # warm-up: the cache fills and churns
                before_origin = origin_requests(origin_port)
                held = []
                sampler = threading.Thread(target=sample_held, args=(s, held, time.time() + args.duration))
                sampler.start()
                m = closed(url, 100_000, args.duration, work)
                sampler.join()
                misses = origin_requests(origin_port) - before_origin
                capacity[label] = {"capacity": size, "requests": m["completed"], "origin_requests": misses,
                                   "hit_ratio": 1 - misses / max(m["completed"], 1), "rps": m["achieved_rate"],
                                   "held_bytes_mean": statistics.mean(held), "held_bytes_max": max(held)}
                print(f"{label}: hit ratio {capacity[label]['hit_ratio']:.3f} in {size}, held "
                      f"{capacity[label]['held_bytes_mean'] / 2**20:.1f} MiB on average", flush=True)
        # 3. Memory per entry.
        entries = 50_000
        for name, make in servers.items():
            with make("memory", "1024MiB") as s:
                pid = worker_pid(s)
                rss_before = rss_kib(pid)
                before_origin = origin_requests(origin_port)
                bench(["steady", "--rate", "10000", "--duration", str(entries / 10000), "--connections", "8", "--keys",
                       str(entries), "--zipf", "0", f"http://127.0.0.1:{s.port}/items?id={{key}}"],
                      os.path.join(work, "fill.json"))
                stored = origin_requests(origin_port) - before_origin
                time.sleep(0.5)
                rss_after = rss_kib(pid)
                row = {"stored": stored, "rss_bytes_per_entry": (rss_after - rss_before) * 1024 / max(stored, 1)}
                if name == "nginx proxy_cache":
                    row["cache_files"] = files_in(s.cache_dir)
                    row["tmpfs_bytes_per_entry"] = dir_bytes(s.cache_dir) / max(row["cache_files"], 1)
                else:
                    g = gateway_cache_gauges(s.admin)
                    row.update(g)
                    row["charged_bytes_per_entry"] = g["used_bytes"] / max(g["entries"], 1)
                memory[name] = row
                print(f"{name}: {row}", flush=True)
    finally:
        origin.terminate()
        origin.wait()
        shutil.rmtree(work, ignore_errors=True)
        for name in os.listdir("/dev/shm"):
            if name.startswith(f"gw-perf-cache-{os.getpid()}-"):
                shutil.rmtree(os.path.join("/dev/shm", name), ignore_errors=True)
    report(args, hits, capacity, memory)


def held_bytes(server):
    """Bytes the cache holds now: the gateway's charged bytes, nginx's cache files."""
    if hasattr(server, "cache_dir"):
        return dir_bytes(server.cache_dir)
    return gateway_cache_gauges(server.admin).get("used_bytes", 0)


def sample_held(server, out, until):
    while time.time() < until:
        time.sleep(0.5)
        out.append(held_bytes(server))


def gateway_cache_gauges(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        for key, name in (("entries", "gateway_cache_entries{"), ("used_bytes", "gateway_cache_used_bytes{")):
            if line.startswith(name):
                out[key] = int(line.rsplit(" ", 1)[1])
    return out


def report(args, hits, capacity, memory):
    med = statistics.median
    gw, ng = hits["gateway"], hits["nginx proxy_cache"]
    paired_rps = med(g["achieved_rate"] / n["achieved_rate"] for g, n in zip(gw, ng))
    paired_cpu = med(n["cpu_us_per_req"] / g["cpu_us_per_req"] for g, n in zip(gw, ng))
    summary = {"hits": {name: {"rps": med(x["achieved_rate"] for x in v),
                               "cpu_us_per_req": med(x["cpu_us_per_req"] for x in v),
                               "origin_requests": [x["origin_requests"] for x in v],
                               "steady_p50_us": med(x["steady"]["latency_us"]["p50"] for x in v),
                               "steady_p99_us": med(x["steady"]["latency_us"]["p99"] for x in v),
                               "rps_rounds": [round(x["achieved_rate"]) for x in v],
                               "cpu_rounds": [round(x["cpu_us_per_req"], 2) for x in v]}
                        for name, v in hits.items()},
               "gateway_vs_nginx": {"rps": paired_rps, "cpu_per_req_nginx_over_gateway": paired_cpu},
               "capacity": capacity, "memory": memory}
    date, commit = run_id()
    lines = [f"# Response cache beside nginx proxy_cache, {date}, commit {commit}", "",
             f"Server on cpu 0 (gateway 1 shard, nginx 1 worker); `bench` and the origin on cpu 1; 1 KiB bodies. "
             f"Command: `perf/cache.py --rounds {args.rounds} --duration {args.duration}`.", "",
             f"## Hits: 1,000 Zipf keys, all cached; {args.rounds} alternating rounds, medians", "",
             f"Gateway vs nginx, paired per round: {paired_rps:.2f}x the req/s, {paired_cpu:.2f}x less CPU per "
             "request.", "",
             "| server | closed loop req/s | CPU us/req | misses in the run | 10k/s p50 us | 10k/s p99 us | rounds req/s |",
             "|---|---|---|---|---|---|---|"]
    for name, v in summary["hits"].items():
        lines.append(f"| {name} | {v['rps']:.0f} | {v['cpu_us_per_req']:.2f} | {', '.join(map(str, v['origin_requests']))} "
                     f"| {v['steady_p50_us']} | {v['steady_p99_us']} | {', '.join(map(str, v['rps_rounds']))} |")
    lines += ["", "## Hit ratio: 100,000 Zipf(1.0) keys, capacity 4 MiB", "",
              "Hit ratio = 1 - requests the origin saw / requests served, over a closed-loop run after a warm-up "
              "run of the same length. Held: the bytes the cache held, sampled every 0.5 s (nginx: its cache "
              "files on tmpfs, whose manager enforces max_size every few seconds).", "",
              "| server | capacity | hit ratio | req/s | held, mean MiB | held, max MiB |", "|---|---|---|---|---|---|"]
    for name, v in capacity.items():
        lines.append(f"| {name} | {v['capacity']} | {v['hit_ratio']:.3f} | {v['rps']:.0f} | "
                     f"{v['held_bytes_mean'] / 2**20:.1f} | {v['held_bytes_max'] / 2**20:.1f} |")
    lines += ["", "## Memory per entry: 1 KiB responses, 50,000 uniform draws of 50,000 keys", "",
              "| server | entries stored | RSS growth per entry | other |", "|---|---|---|---|"]
    for name, v in memory.items():
        other = (f"{v['charged_bytes_per_entry']:.0f} B charged to the capacity per entry"
                 if "charged_bytes_per_entry" in v else
                 f"{v['tmpfs_bytes_per_entry']:.0f} B of tmpfs per cache file ({v['cache_files']} files)")
        lines.append(f"| {name} | {v['stored']} | {v['rss_bytes_per_entry']:.0f} B | {other} |")
    write_results("cache", date, commit, lines + [""], summary)


if __name__ == "__main__":
    main()
