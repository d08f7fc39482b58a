#!/usr/bin/env bash
# ottr against MariaDB's own replication on the same binlog (release build): catch-up of a
# fixed workload in three variants, Select alone, peak RSS, lag at a steady rate, the online
# copy against mariadb-dump | mariadb, and verification against CHECKSUM TABLE and
# pt-table-checksum.
# Prints one table and writes target/bench/results.csv. Not part of scripts/test.sh.
#
#   scripts/bench.sh                                   # 1,000,000 row changes, every variant, 3 runs each
#   scripts/bench.sh --variants verify --repetitions 1 --lag-seconds 0   # verification alone
#   scripts/bench.sh --rows 100000 --variants autocommit,trx100 --repetitions 1 --lag-seconds 20 [--parallelism 4] [--option batch_rows=20000]
#   OTTR_PERF=/tmp/perf.data scripts/bench.sh …        # also records `perf record -g -a` during each catch-up
#
# Every server it starts is stopped when it exits, is interrupted, or gets SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages mariadb-server:mariadbd mariadb-client:mariadb python3:python3 \
  percona-toolkit:pt-table-checksum
ensure_rust

echo "== building (release)" >&2
cargo bench --bench replication --no-run --quiet
# The benchmark's servers are killed by watchdogs when its process ends; a signal here ends it.
cargo bench --bench replication --quiet -- "$@" &
bench=$!
trap 'kill -TERM "$bench" 2>/dev/null; wait "$bench" 2>/dev/null; exit 143' TERM INT
wait "$bench"
