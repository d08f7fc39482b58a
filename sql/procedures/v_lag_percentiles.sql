-- Lag percentiles per pipeline over the last 1, 5, 15 and 60 minutes (window_s), summed from
-- the per-bucket histograms in stat_lag: p50_ms/p99_ms are the upper bound of the histogram
-- bucket holding that share of the samples.
CREATE VIEW v_lag_percentiles AS
SELECT pipeline_id,
       window_s,
       MIN(CASE WHEN below >= 0.50 * total THEN le_ms END) AS p50_ms,
       MIN(CASE WHEN below >= 0.99 * total THEN le_ms END) AS p99_ms,
       MAX(total) AS samples
  FROM (SELECT pipeline_id, window_s, le_ms,
               SUM(samples) OVER (PARTITION BY pipeline_id, window_s ORDER BY le_ms) AS below,
               SUM(samples) OVER (PARTITION BY pipeline_id, window_s) AS total
          FROM (SELECT l.pipeline_id, w.window_s, l.le_ms, SUM(l.samples) AS samples
                  FROM stat_lag l
                  JOIN (SELECT 60 AS window_s UNION ALL SELECT 300 UNION ALL SELECT 900
                        UNION ALL SELECT 3600) w
                    ON l.bucket_start >= NOW() - INTERVAL w.window_s SECOND
                 GROUP BY l.pipeline_id, w.window_s, l.le_ms) summed) cumulative
 GROUP BY pipeline_id, window_s
