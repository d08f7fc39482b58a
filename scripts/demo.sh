#!/usr/bin/env bash
# A first look at ottr on a local sandbox: installs what is missing, starts three MariaDB
# servers (source with a ROW binlog, target, metadata) in target/demo, seeds the target from a
# consistent dump, configures a channel with SQL (printed), starts a node, writes traffic to
# the source (including a new table, created on the target by its DDL), and compares source
# and target by row count and CHECKSUM TABLE. It exits 0 only when they match.
#
#   scripts/demo.sh          start (or restart) the sandbox
#   scripts/demo.sh stop     stop it and remove target/demo
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
SANDBOX=${OTTR_DEMO_DIR:-$PWD/target/demo}

stop_sandbox() {
  stop_pid_file "$SANDBOX/node.pid"
  for server in source target meta; do stop_pid_file "$SANDBOX/$server/pid"; done
  rm -rf "$SANDBOX"
}

if [ "${1:-}" = "stop" ]; then
  stop_sandbox
  echo "sandbox stopped"
  exit 0
fi

ensure_packages mariadb-server:mariadbd mariadb-client:mariadb python3:python3
ensure_rust
echo "== building ottr"
cargo build --quiet
OTTR=$PWD/target/debug/ottr

stop_sandbox
mkdir -p "$SANDBOX"
SOURCE_PORT=$(free_port); TARGET_PORT=$(free_port); META_PORT=$(free_port)
echo "== starting MariaDB: source :$SOURCE_PORT, target :$TARGET_PORT, metadata :$META_PORT"
start_mariadb "$SANDBOX/source" "$SOURCE_PORT" --log-bin=mysql-bin --binlog-format=ROW \
  --binlog-row-image=FULL --binlog-row-metadata=FULL
start_mariadb "$SANDBOX/target" "$TARGET_PORT" --server-id=2
start_mariadb "$SANDBOX/meta" "$META_PORT" --server-id=3
source_sql() { mariadb -h127.0.0.1 -P"$SOURCE_PORT" -uroot "$@"; }
target_sql() { mariadb -h127.0.0.1 -P"$TARGET_PORT" -uroot "$@"; }
meta_sql() { mariadb -h127.0.0.1 -P"$META_PORT" -uroot ottr "$@"; }

echo "== a shop on the source, with a reader account"
source_sql <<'SQL'
CREATE DATABASE shop;
CREATE TABLE shop.order_2026 (id BIGINT PRIMARY KEY, customer VARCHAR(64), amount DECIMAL(12,2));
INSERT INTO shop.order_2026 VALUES (1, 'ada', 12.50), (2, 'grace', 99.99);
INSERT INTO shop.order_2026 SELECT seq + 100, CONCAT('customer ', seq), seq / 10 FROM shop.seq_1_to_5000;
CREATE USER canal@'%' IDENTIFIED BY 'demo-reader-pw';
GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO canal@'%';
-- lag heartbeats: the reader writes one row per pipeline into ottr_sys.heartbeat
-- and the online copy's watermarks, into ottr_sys.watermark
GRANT CREATE, INSERT, UPDATE ON ottr_sys.* TO canal@'%';
SQL

echo "== ottr migrate"
META_URL="mysql://root@127.0.0.1:$META_PORT/ottr"
"$OTTR" migrate --meta "$META_URL" 2>/dev/null

echo "== configuring with SQL"
export OTTR_SECRET_SH=demo-reader-pw
cat <<SQL | tee "$SANDBOX/configure.sql"
CALL add_data_source('sh', 'mariadb', 'mysql://canal@127.0.0.1:$SOURCE_PORT', 'env:OTTR_SECRET_SH');
CALL add_data_source('us', 'mariadb', 'mysql://root@127.0.0.1:$TARGET_PORT', NULL);
CALL create_channel('orders_sh_us', 'sh', 'us');
CALL add_table_pair('orders_sh_us', 'shop', 'order_.*', NULL, NULL);
-- the first start copies the paired tables (created on the target) while it streams
CALL set_pipeline_option('orders_sh_us', 'initial_copy', 'on');
CALL set_setting('lease_ms', 5000);
CALL start_channel('orders_sh_us');
SQL
meta_sql <"$SANDBOX/configure.sql"

echo "== starting a node"
"$OTTR" node --meta "$META_URL" --name node-1 >"$SANDBOX/node.log" 2>&1 &
echo $! >"$SANDBOX/node.pid"
for _ in $(seq 150); do
  state=$(meta_sql -N -e "SELECT observed FROM v_pipeline_status WHERE pipeline = 'orders_sh_us'")
  [ "$state" = "running" ] || [ "$state" = "error" ] && break
  sleep 0.2
done

echo "== the initial copy (SELECT * FROM v_copy)"
for _ in $(seq 300); do
  left=$(meta_sql -N -e "SELECT COUNT(*) FROM v_copy WHERE state <> 'done'")
  done_tables=$(meta_sql -N -e "SELECT COUNT(*) FROM v_copy WHERE state = 'done'")
  [ "$left" = "0" ] && [ "$done_tables" != "0" ] && break
  sleep 0.2
done
meta_sql -t -e "SELECT job, table_name, state, rows_copied, chunks_done, rows_per_s FROM v_copy"

echo "== sample traffic on the source"
source_sql shop <<'SQL'
INSERT INTO order_2026 VALUES (3, 'alan', 3.14), (4, 'barbara', 42.00), (5, 'edsger', 0.01);
UPDATE order_2026 SET amount = amount * 2 WHERE id IN (1, 4);
DELETE FROM order_2026 WHERE id = 2;
UPDATE order_2026 SET id = 20 WHERE id = 5;
CREATE TABLE order_2027 (id BIGINT PRIMARY KEY, customer VARCHAR(64), amount DECIMAL(12,2));
INSERT INTO order_2027 SELECT seq, CONCAT('customer ', seq), seq / 100 FROM seq_1_to_1000;
SQL

echo "== comparing source and target"
compare() {
  local table=$1 source_sum target_sum source_count target_count
  source_sum=$(source_sql -N -e "CHECKSUM TABLE shop.$table" 2>/dev/null | awk '{print $2}')
  target_sum=$(target_sql -N -e "CHECKSUM TABLE shop.$table" 2>/dev/null | awk '{print $2}')
  source_count=$(source_sql -N -e "SELECT COUNT(*) FROM shop.$table" 2>/dev/null)
  target_count=$(target_sql -N -e "SELECT COUNT(*) FROM shop.$table" 2>/dev/null)
  printf '   %-12s rows %6s / %6s   checksum %12s / %12s   (source / target)\n' \
    "$table" "$source_count" "$target_count" "$source_sum" "$target_sum"
  [ -n "$source_sum" ] && [ "$source_sum" = "$target_sum" ] && [ "$source_count" = "$target_count" ]
}
matched=no
for _ in $(seq 60); do
  if compare order_2026 >/dev/null && compare order_2027 >/dev/null; then matched=yes; break; fi
  sleep 0.5
done
compare order_2026 || true
compare order_2027 || true
# Lag comes from heartbeat rows: wait for the first to be applied.
for _ in $(seq 50); do
  [ -n "$(meta_sql -N -e "SELECT lag_ms FROM v_lag WHERE pipeline = 'orders_sh_us' AND lag_ms IS NOT NULL")" ] && break
  sleep 0.2
done
"$OTTR" status --meta "$META_URL"

cat <<EOF

The sandbox is running in $SANDBOX:
  metadata:  mariadb -h127.0.0.1 -P$META_PORT -uroot ottr      (try: SELECT * FROM v_pipeline_status\\G)
  source:    mariadb -h127.0.0.1 -P$SOURCE_PORT -uroot shop
  target:    mariadb -h127.0.0.1 -P$TARGET_PORT -uroot shop
  node log:  $SANDBOX/node.log
  check:     $OTTR check --meta $META_URL --data-source sh
  watch:     $OTTR status --meta $META_URL --watch      (lag, rows/s, nodes, open alerts)
  lag:       SELECT * FROM v_lag\\G   SELECT * FROM v_throughput;   SELECT * FROM v_stage_time;
Write to the source and watch the target follow. Stop everything with: scripts/demo.sh stop
EOF
if [ "$matched" != yes ]; then
  echo "source and target differ: see $SANDBOX/node.log and SELECT * FROM v_pipeline_status" >&2
  exit 1
fi
echo "source and target are identical"
