-- Node-wide settings as typed rows: an integer value with its own bounds, checked by the
-- database on every write (also on a plain UPDATE) and again by each node when it reads them.

CREATE TABLE IF NOT EXISTS setting (
  name        VARCHAR(64) NOT NULL,
  value       BIGINT NOT NULL,
  min_value   BIGINT NOT NULL,
  max_value   BIGINT NOT NULL,
  unit        VARCHAR(16) NOT NULL,
  description VARCHAR(255) NOT NULL,
  updated_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (name),
  CONSTRAINT ck_setting_range CHECK (value BETWEEN min_value AND max_value)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO setting (name, value, min_value, max_value, unit, description) VALUES
  ('lease_ms', 10000, 500, 600000, 'ms', 'a pipeline lease lasts this long without renewal; a dead node''s pipelines move after it'),
  ('heartbeat_ms', 1000, 50, 60000, 'ms', 'how often a node heartbeats and renews its leases; must be under lease_ms / 2'),
  ('poll_ms', 1000, 50, 60000, 'ms', 'how often a node reads the configuration'),
  ('retry_min_ms', 1000, 10, 600000, 'ms', 'first wait before a failed pipeline is retried'),
  ('retry_max_ms', 60000, 10, 3600000, 'ms', 'longest wait between retries of a failed pipeline'),
  ('event_log_days', 30, 1, 3650, 'days', 'event_log rows older than this are deleted');
