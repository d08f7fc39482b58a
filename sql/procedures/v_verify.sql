-- Verifications, one row per job and source table: state (queued, verifying, done, failed,
-- cancelled), chunks done of an estimated total, rows compared of the source's estimate,
-- rows differing (in v_verify_diff) and unverified (changed in every window they were
-- compared in: verify again), the rate over the last minute and the time left at it.
CREATE VIEW v_verify AS
SELECT j.id AS job,
       p.name AS pipeline,
       t.source_schema AS schema_name,
       t.source_table AS table_name,
       t.target_name AS target_table,
       t.state,
       t.chunks_done,
       GREATEST(COALESCE(t.chunks_total, 0), t.chunks_done) AS chunks_total,
       t.rows_compared,
       t.rows_estimated,
       t.rows_differing,
       t.rows_unverified,
       CASE WHEN t.state = 'done' THEN 100.0
            WHEN t.rows_estimated > 0 THEN LEAST(99.9, ROUND(100.0 * t.rows_compared / t.rows_estimated, 1))
       END AS percent,
       ROUND(t.rows_per_s, 1) AS rows_per_s,
       CASE WHEN t.state = 'verifying' AND t.rows_per_s > 0 AND t.rows_estimated IS NOT NULL
            THEN CEIL(GREATEST(t.rows_estimated - t.rows_compared, 0) / t.rows_per_s) END AS eta_s,
       CASE WHEN t.state = 'verifying' AND t.rows_per_s > 0 AND t.rows_estimated IS NOT NULL
            THEN NOW() + INTERVAL CEIL(GREATEST(t.rows_estimated - t.rows_compared, 0) / t.rows_per_s) SECOND END AS eta,
       t.started_at,
       t.finished_at,
       t.last_error,
       j.origin,
       j.requested,
       j.repair,
       j.created_at,
       j.created_by
  FROM verify_table t
  JOIN verify_job j ON j.id = t.job_id
  JOIN pipeline p ON p.id = j.pipeline_id
