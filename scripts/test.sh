#!/usr/bin/env bash
# Installs what is missing, then runs every check: formatting, clippy, and the whole test
# suite (unit tests, and integration tests on real mariadbd servers and an SMTP server that
# the tests start).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# python3-aiosmtpd: the SMTP server the monitor tests send alert mail to
ensure_packages mariadb-server:mariadbd mariadb-client:mariadb python3:python3 python3-aiosmtpd:aiosmtpd
ensure_rust
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test 2>&1
