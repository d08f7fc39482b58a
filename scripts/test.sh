#!/usr/bin/env bash
# Installs what is missing, then runs every check: formatting, clippy, and the whole test
# suite (unit tests, and integration tests on real mariadbd servers, an SMTP server and a
# ZooKeeper server that the tests start).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# python3-aiosmtpd: the SMTP server the monitor tests send alert mail to;
# zookeeper: the server the --zk tests coordinate through (run with java, not as a service)
# openssl: the test CA and certificates of the TLS tests
ensure_packages mariadb-server:mariadbd mariadb-client:mariadb python3:python3 python3-aiosmtpd:aiosmtpd \
  zookeeper:/usr/share/java/zookeeper.jar openssl:openssl
ensure_rust
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test 2>&1
