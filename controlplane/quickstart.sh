#!/usr/bin/env bash
# Quick start: builds the gateway, starts a control plane (embedded store under
# target/quickstart/controlplane), a data plane following it on :8080 (admin on :9901), the
# bench origin on :9000 (the example's backend), and applies controlplane/examples/petstore.yaml.
# The control plane is secured as always: TLS with its own CA, and tokens. Its first start
# writes the admin's controlctl configuration (admin.conf) and a data-plane token into its
# data dir; this script uses both. Ctrl-C stops everything; the state stays for the next start.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p dataplane -p controlplane -p bench
bin=$PWD/target/release
state=$PWD/target/quickstart
mkdir -p "$state"
control=${CONTROL:-127.0.0.1:7000}
listen=${LISTEN:-0.0.0.0:8080}
admin=${ADMIN:-127.0.0.1:9901}
export CONTROLCTL_CONFIG=$state/controlplane/admin.conf
export CONTROLCTL_SERVER=https://$control

pids=()
cleanup() {
  # Newest first, each waited for: the data plane flushes its quota usage to the control
  # plane before that stops.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

wait_port() { # host:port
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

"$bin/origin" --listen 127.0.0.1:9000 >/dev/null &
pids+=($!)
"$bin/controlplane" --listen "$control" --data-dir "$state/controlplane" &
pids+=($!)
wait_port "$control"
for _ in $(seq 1 100); do
  [ -f "$state/controlplane/dataplane.token" ] && break
  sleep 0.05
done
"$bin/dataplane" --listen "$listen" --admin "$admin" --control-plane "https://$control" \
  --control-plane-ca "$state/controlplane/pki/ca.pem" \
  --control-plane-token-file "$state/controlplane/dataplane.token" \
  --state-dir "$state/dataplane" &
pids+=($!)
wait_port "$admin"
# Let the data plane register, so --wait waits for it.
for _ in $(seq 1 100); do
  "$bin/controlctl" status | grep -q connected && break
  sleep 0.05
done
"$bin/controlctl" apply -f controlplane/examples/petstore.yaml --wait

cat <<TXT

The gateway is up. Try:
  curl -i http://localhost:8080/health          # MOCK integration
  curl -i http://localhost:8080/pets            # HTTP_PROXY to the origin on :9000
  curl -i http://localhost:8080/pets/42         # twice: the second answer is from the stage cache
  curl -i http://localhost:8080/nope            # 403 Missing Authentication Token
  export CONTROLCTL_CONFIG=$CONTROLCTL_CONFIG   # the admin's credentials
  $bin/controlctl status                         # version per data plane and shard
  $bin/controlctl get api
  $bin/controlctl metrics                        # per method: counts, errors, cache, latency
  $bin/controlctl cache flush petstore --stage prod
  curl -s http://$admin/metrics
Ctrl-C to stop.
TXT
wait
