-- What nodes write: registration and heartbeats, leases with fencing tokens, positions,
-- observed pipeline state, the history of who ran what, and an event log.
-- Each node and each pipeline writes its own rows: there is no row every writer contends for.

CREATE TABLE IF NOT EXISTS node (
  id             INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name           VARCHAR(64)  NOT NULL,
  host           VARCHAR(255) NOT NULL,
  pid            INT UNSIGNED NOT NULL,
  version        VARCHAR(32)  NOT NULL,
  instance       BIGINT UNSIGNED NOT NULL COMMENT 'random per process start: tells a restarted node from its earlier life',
  started_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  last_heartbeat TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  stopped_at     TIMESTAMP(6) NULL COMMENT 'set by a clean shutdown; NULL while running or after a crash',
  PRIMARY KEY (id),
  UNIQUE KEY uk_node_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS pipeline_lease (
  pipeline_id INT UNSIGNED NOT NULL,
  holder      VARCHAR(64) NULL COMMENT 'node name; NULL when released',
  token       BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'fencing token: +1 at every acquisition, never reused',
  acquired_at TIMESTAMP(6) NULL,
  expires_at  TIMESTAMP(6) NULL COMMENT 'judged by this database''s NOW(6), never a node''s clock',
  PRIMARY KEY (pipeline_id),
  KEY ix_pipeline_lease_holder (holder),
  CONSTRAINT fk_pipeline_lease_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS pipeline_position (
  pipeline_id   INT UNSIGNED NOT NULL,
  binlog_file   VARCHAR(255) NULL,
  binlog_offset BIGINT UNSIGNED NULL,
  gtid          TEXT NULL COMMENT 'MariaDB gtid_binlog_pos form, or a MySQL GTID set',
  trx_rows_done BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'rows of the transaction at this position already handed on',
  token         BIGINT UNSIGNED NOT NULL COMMENT 'fencing token of the writer',
  updated_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (pipeline_id),
  CONSTRAINT fk_pipeline_position_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE,
  CONSTRAINT ck_pipeline_position_some CHECK (binlog_file IS NOT NULL OR gtid IS NOT NULL)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS pipeline_state (
  pipeline_id INT UNSIGNED NOT NULL,
  state       ENUM('stopped','starting','running','retrying','error') NOT NULL,
  reason      VARCHAR(1024) NULL,
  node        VARCHAR(64) NULL,
  token       BIGINT UNSIGNED NOT NULL,
  since       TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'when state last changed',
  updated_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (pipeline_id),
  CONSTRAINT fk_pipeline_state_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS pipeline_run (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  pipeline_id INT UNSIGNED NOT NULL,
  node        VARCHAR(64) NOT NULL,
  token       BIGINT UNSIGNED NOT NULL,
  started_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  stopped_at  TIMESTAMP(6) NULL COMMENT 'NULL while running, or when the node died',
  stop_reason VARCHAR(255) NULL,
  PRIMARY KEY (id),
  KEY ix_pipeline_run (pipeline_id, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS event_log (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  at          TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  node        VARCHAR(64) NULL,
  pipeline_id INT UNSIGNED NULL,
  level       ENUM('info','warn','error') NOT NULL,
  kind        VARCHAR(64) NOT NULL,
  message     VARCHAR(1024) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_event_log_at (at),
  KEY ix_event_log_pipeline (pipeline_id, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
