-- Desired beside observed state for every pipeline, with the reason, the node that holds it,
-- where it has read to, and since when. A pipeline whose lease lapsed shows as stopped, with
-- the lapsed holder in the reason, whatever its last reported state was; a new holder shows
-- as starting until it has reported under its own fencing token. lag_ms is the lag of the last
-- heartbeat applied, plus the time since then beyond one heartbeat interval: it grows when
-- nothing arrives (a target or a pipeline down), and is exact while heartbeats flow. Without
-- heartbeats (off, or not writable) it is the last event-time reading while the pipeline runs,
-- and grows while it does not.
CREATE VIEW v_pipeline_status AS
SELECT c.name AS channel,
       p.name AS pipeline,
       c.desired,
       CASE WHEN l.holder IS NOT NULL AND l.expires_at > NOW(6)
              THEN IF(s.token = l.token, s.state, 'starting')
            ELSE 'stopped' END AS observed,
       CASE WHEN l.holder IS NOT NULL AND l.expires_at > NOW(6) THEN IF(s.token = l.token, s.reason, NULL)
            WHEN c.desired = 'running' AND l.holder IS NOT NULL
              THEN CONCAT('waiting for a node: the lease of ', l.holder, ' lapsed at ', l.expires_at)
            WHEN c.desired = 'running' THEN 'waiting for a node that may run it'
            ELSE COALESCE(s.reason, 'stopped by the operator') END AS reason,
       CASE WHEN l.expires_at > NOW(6) THEN l.holder END AS node,
       CASE WHEN pos.binlog_file IS NOT NULL THEN CONCAT(pos.binlog_file, ':', pos.binlog_offset)
            ELSE pos.gtid END AS position,
       CASE WHEN lag.pipeline_id IS NULL THEN NULL
            WHEN lag.heartbeat_ms = 0 AND l.holder IS NOT NULL AND l.expires_at > NOW(6)
                 AND s.token = l.token AND s.state = 'running' THEN lag.lag_ms
            ELSE CAST(lag.lag_ms + GREATEST(0, TIMESTAMPDIFF(MICROSECOND, lag.measured_at, NOW(6)) / 1000
                      - lag.heartbeat_ms) AS SIGNED) END AS lag_ms,
       CASE WHEN l.holder IS NOT NULL AND l.expires_at > NOW(6) THEN IF(s.token = l.token, s.since, l.acquired_at)
            WHEN l.holder IS NOT NULL THEN l.expires_at
            ELSE COALESCE(s.since, p.created_at) END AS since,
       src.name AS source,
       tgt.name AS target,
       pos.gtid AS gtid,
       l.token AS lease_token,
       CASE WHEN l.expires_at > NOW(6)
            THEN CAST(TIMESTAMPDIFF(MICROSECOND, NOW(6), l.expires_at) / 1000 AS SIGNED) END AS lease_left_ms
  FROM pipeline p
  JOIN channel c ON c.id = p.channel_id
  LEFT JOIN pipeline_lease l ON l.pipeline_id = p.id
  LEFT JOIN pipeline_state s ON s.pipeline_id = p.id
  LEFT JOIN pipeline_position pos ON pos.pipeline_id = p.id
  LEFT JOIN pipeline_lag lag ON lag.pipeline_id = p.id
  LEFT JOIN data_source src ON src.id = p.source_id
  LEFT JOIN data_source tgt ON tgt.id = p.target_id
