-- Which source tables change most: rows per kind and bytes over the last hour, per pipeline,
-- busiest first.
CREATE VIEW v_top_tables AS
SELECT p.name AS pipeline,
       s.schema_name,
       s.table_name,
       SUM(s.inserts + s.updates + s.deletes) AS rows_1h,
       SUM(s.inserts) AS inserts_1h,
       SUM(s.updates) AS updates_1h,
       SUM(s.deletes) AS deletes_1h,
       SUM(s.bytes) AS bytes_1h,
       MAX(s.bucket_start) AS last_bucket
  FROM stat_table s
  JOIN pipeline p ON p.id = s.pipeline_id
 WHERE s.bucket_start >= NOW() - INTERVAL 1 HOUR
 GROUP BY p.name, s.schema_name, s.table_name
 ORDER BY rows_1h DESC
