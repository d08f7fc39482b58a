-- How fast each pipeline applies: rows and bytes per second over the last 1 and 15 minutes,
-- and the last 15 minutes' rows per kind, batches and when it last applied something.
CREATE VIEW v_throughput AS
SELECT c.name AS channel,
       p.name AS pipeline,
       ROUND(COALESCE(SUM(CASE WHEN s.bucket_start >= NOW() - INTERVAL 60 SECOND
                               THEN s.inserts + s.updates + s.deletes END), 0) / 60, 1) AS rows_per_s_1m,
       ROUND(COALESCE(SUM(s.inserts + s.updates + s.deletes), 0) / 900, 1) AS rows_per_s_15m,
       ROUND(COALESCE(SUM(CASE WHEN s.bucket_start >= NOW() - INTERVAL 60 SECOND
                               THEN s.insert_bytes + s.update_bytes + s.delete_bytes + s.ddl_bytes END), 0) / 60) AS bytes_per_s_1m,
       COALESCE(SUM(s.inserts), 0) AS inserts_15m,
       COALESCE(SUM(s.updates), 0) AS updates_15m,
       COALESCE(SUM(s.deletes), 0) AS deletes_15m,
       COALESCE(SUM(s.ddls), 0) AS ddls_15m,
       COALESCE(SUM(s.batches), 0) AS batches_15m,
       MAX(CASE WHEN s.inserts + s.updates + s.deletes + s.ddls > 0 THEN s.bucket_start END) AS last_change_bucket
  FROM pipeline p
  JOIN channel c ON c.id = p.channel_id
  LEFT JOIN stat_pipeline s ON s.pipeline_id = p.id AND s.bucket_start >= NOW() - INTERVAL 15 MINUTE
 GROUP BY c.name, p.id, p.name
