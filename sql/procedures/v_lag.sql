-- How far behind each pipeline is: now (as in v_pipeline_status), at the last measurement,
-- and p50/p99/max over the last 1, 5 and 15 minutes from the lag histograms (percentiles are
-- the upper bound of the histogram bucket that holds them).
CREATE VIEW v_lag AS
SELECT c.name AS channel,
       p.name AS pipeline,
       s.lag_ms,
       lag.lag_ms AS last_lag_ms,
       lag.method,
       lag.measured_at,
       lag.source_time,
       lag.applied_at,
       m1.p50_ms AS p50_1m_ms,
       m1.p99_ms AS p99_1m_ms,
       m5.p50_ms AS p50_5m_ms,
       m5.p99_ms AS p99_5m_ms,
       m15.p50_ms AS p50_15m_ms,
       m15.p99_ms AS p99_15m_ms,
       m15.samples AS samples_15m,
       (SELECT MAX(sp.lag_max_ms) FROM stat_pipeline sp
         WHERE sp.pipeline_id = p.id AND sp.bucket_start >= NOW() - INTERVAL 15 MINUTE) AS max_15m_ms
  FROM pipeline p
  JOIN channel c ON c.id = p.channel_id
  JOIN v_pipeline_status s ON s.pipeline = p.name
  LEFT JOIN pipeline_lag lag ON lag.pipeline_id = p.id
  LEFT JOIN v_lag_percentiles m1 ON m1.pipeline_id = p.id AND m1.window_s = 60
  LEFT JOIN v_lag_percentiles m5 ON m5.pipeline_id = p.id AND m5.window_s = 300
  LEFT JOIN v_lag_percentiles m15 ON m15.pipeline_id = p.id AND m15.window_s = 900
