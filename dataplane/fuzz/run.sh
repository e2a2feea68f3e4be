#!/usr/bin/env bash
# Short fuzz runs of every parser that takes outside bytes (cargo-fuzz, libFuzzer): request
# heads, upstream response heads (with path normalisation), the chunked decoder, routing-table
# bytes and manifests. The corpus kept in corpus/ seeds each run; after a long run, keep what
# it found with `RUSTC_BOOTSTRAP=1 cargo fuzz cmin TARGET` and commit corpus/.
# Usage: dataplane/fuzz/run.sh [SECONDS_PER_TARGET]   (default 20; CI runs it)
# Installs cargo-fuzz if missing. The stable toolchain runs it with RUSTC_BOOTSTRAP=1, which
# unlocks the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
for target in head response_head chunked table manifest; do
  echo "== fuzz $target for ${seconds}s"
  log=$(mktemp)
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target found a failure (input saved under dataplane/fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E "^Done" "$log" || true
  rm -f "$log"
done
