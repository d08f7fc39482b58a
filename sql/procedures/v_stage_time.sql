-- Where each pipeline's time went over the last 5 minutes: milliseconds spent in Select
-- (decoding and batching, waiting for the source excluded), Extract, Transform and Load
-- (applying on the target, positions included), and each stage's share of their sum.
CREATE VIEW v_stage_time AS
SELECT c.name AS channel,
       p.name AS pipeline,
       COALESCE(SUM(s.batches), 0) AS batches_5m,
       ROUND(COALESCE(SUM(s.select_us), 0) / 1000) AS select_ms,
       ROUND(COALESCE(SUM(s.extract_us), 0) / 1000) AS extract_ms,
       ROUND(COALESCE(SUM(s.transform_us), 0) / 1000) AS transform_ms,
       ROUND(COALESCE(SUM(s.load_us), 0) / 1000) AS load_ms,
       ROUND(100 * SUM(s.select_us) / NULLIF(SUM(s.select_us + s.extract_us + s.transform_us + s.load_us), 0), 1) AS select_pct,
       ROUND(100 * SUM(s.extract_us) / NULLIF(SUM(s.select_us + s.extract_us + s.transform_us + s.load_us), 0), 1) AS extract_pct,
       ROUND(100 * SUM(s.transform_us) / NULLIF(SUM(s.select_us + s.extract_us + s.transform_us + s.load_us), 0), 1) AS transform_pct,
       ROUND(100 * SUM(s.load_us) / NULLIF(SUM(s.select_us + s.extract_us + s.transform_us + s.load_us), 0), 1) AS load_pct
  FROM pipeline p
  JOIN channel c ON c.id = p.channel_id
  LEFT JOIN stat_pipeline s ON s.pipeline_id = p.id AND s.bucket_start >= NOW() - INTERVAL 5 MINUTE
 GROUP BY c.name, p.id, p.name
