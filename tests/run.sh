#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test, with the data-plane
# end-to-end suite run once per io driver. Needs only the Rust toolchain (it installs curl and
# openssl from apt when they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# The TLS tests drive real clients: curl, and openssl (also for RSA keys, which ring cannot
# make). A fresh machine may lack them.
if ! command -v curl >/dev/null || ! command -v openssl >/dev/null; then
  echo "== installing curl and openssl from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl openssl
fi

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== unit tests"
cargo test --workspace --locked --exclude gateway-tests

echo "== layering (each module uses only the layers below it)"
cargo test -p gateway-tests --test layering --locked

for driver in uring epoll; do
  echo "== end-to-end tests, io driver: $driver"
  GATEWAY_IO_DRIVER=$driver cargo test -p gateway-tests --test e2e --locked
done
