-- Which nodes are alive (a heartbeat younger than the lease_ms setting, and no clean stop),
-- when each last heartbeated, how many pipelines each holds a live lease on, which one runs
-- the monitor, and whether the operator drained it (drain_node). state: 'working', 'draining'
-- (drained, still holding pipelines or the monitor), 'drained', 'stopped' (clean stop) or
-- 'dead' (no heartbeat within the lease). coordination: 'leases', 'zookeeper' (--zk), or why
-- ZooKeeper cannot be used now and what the node does meanwhile ('zookeeper unreachable
-- since …: holding 2 pipelines until their tokens can no longer be confirmed, claiming none').
CREATE VIEW v_node_status AS
SELECT v.node, v.host,
       CASE WHEN v.stopped_at IS NOT NULL THEN 'stopped'
            WHEN NOT v.alive THEN 'dead'
            WHEN v.drain AND (v.pipelines > 0 OR v.monitor) THEN 'draining'
            WHEN v.drain THEN 'drained'
            ELSE 'working' END AS state,
       v.alive, v.last_heartbeat, v.heartbeat_age_ms, v.pipelines, v.monitor, v.drain,
       v.coordination, v.version, v.pid, v.started_at, v.stopped_at
  FROM (
SELECT n.name AS node,
       n.host,
       (n.stopped_at IS NULL
        AND n.last_heartbeat > NOW(6) - INTERVAL (SELECT s.value FROM setting s WHERE s.name = 'lease_ms') * 1000 MICROSECOND) AS alive,
       n.last_heartbeat,
       CAST(TIMESTAMPDIFF(MICROSECOND, n.last_heartbeat, NOW(6)) / 1000 AS SIGNED) AS heartbeat_age_ms,
       (SELECT COUNT(*) FROM pipeline_lease l WHERE l.holder = n.name AND l.expires_at > NOW(6)) AS pipelines,
       EXISTS (SELECT 1 FROM monitor_lease m WHERE m.holder = n.name AND m.expires_at > NOW(6)) AS monitor,
       n.drain,
       n.coordination,
       n.version,
       n.pid,
       n.started_at,
       n.stopped_at
  FROM node n) v
