#!/usr/bin/env bash
# Quick start: builds the gateway, compiles the example manifest, and runs a data plane on
# :8080 (admin on :9901) in front of the bench origin on :9000 (the example's backend).
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p dataplane -p controlplane -p bench
bin=target/release
state=target/quickstart
mkdir -p "$state"

"$bin/controlctl" compile -f controlplane/examples/petstore.yaml -o "$state/table.bin"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$bin/origin" --listen 127.0.0.1:9000 &
pids+=($!)
"$bin/dataplane" --listen "${LISTEN:-0.0.0.0:8080}" --admin "${ADMIN:-127.0.0.1:9901}" --table "$state/table.bin" &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://${ADMIN:-127.0.0.1:9901}/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<TXT

The gateway is up. Try:
  curl -i http://localhost:8080/health          # MOCK integration
  curl -i http://localhost:8080/pets            # HTTP_PROXY to the origin on :9000
  curl -i http://localhost:8080/pets/42
  curl -i http://localhost:8080/nope            # 403 Missing Authentication Token
  curl -s http://127.0.0.1:9901/metrics
Ctrl-C to stop.
TXT
wait
