-- Optional ZooKeeper coordination (ottr node --zk host:port,...): the session timeout every
-- such node asks for, and how each node coordinates, shown in v_node_status.

INSERT IGNORE INTO setting (name, value, min_value, max_value, unit, description) VALUES
  ('zk_session_ms', 6000, 1000, 60000, 'ms',
   'ZooKeeper session timeout of nodes started with --zk, at least 3 heartbeats: a dead node''s pipelines move after it (the server clamps it to its min/maxSessionTimeout)');

ALTER TABLE node
  ADD COLUMN coordination VARCHAR(255) NOT NULL DEFAULT 'leases'
    COMMENT 'leases, zookeeper, or why ZooKeeper cannot be used now and what the node does meanwhile';
