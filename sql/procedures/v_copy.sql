-- Online copies, one row per job and source table: state (queued, copying, done, failed,
-- cancelled, paused), rows copied of the source's estimate, chunks, the rate over the last
-- minute and the time left at that rate, and the last error.
CREATE VIEW v_copy AS
SELECT j.id AS job,
       p.name AS pipeline,
       t.source_schema AS schema_name,
       t.source_table AS table_name,
       t.target_name AS target_table,
       t.state,
       t.rows_copied,
       t.rows_estimated,
       CASE WHEN t.state = 'done' THEN 100.0
            WHEN t.rows_estimated > 0 THEN LEAST(99.9, ROUND(100.0 * t.rows_copied / t.rows_estimated, 1))
       END AS percent,
       t.chunks_done,
       ROUND(t.rows_per_s, 1) AS rows_per_s,
       CASE WHEN t.state = 'copying' AND t.rows_per_s > 0 AND t.rows_estimated IS NOT NULL
            THEN CEIL(GREATEST(t.rows_estimated - t.rows_copied, 0) / t.rows_per_s) END AS eta_s,
       CASE WHEN t.state = 'copying' AND t.rows_per_s > 0 AND t.rows_estimated IS NOT NULL
            THEN NOW() + INTERVAL CEIL(GREATEST(t.rows_estimated - t.rows_copied, 0) / t.rows_per_s) SECOND END AS eta,
       t.started_at,
       t.finished_at,
       t.last_error,
       j.where_clause,
       j.origin,
       j.requested,
       j.created_at,
       j.created_by
  FROM copy_table t
  JOIN copy_job j ON j.id = t.job_id
  JOIN pipeline p ON p.id = j.pipeline_id
