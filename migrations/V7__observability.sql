-- Observability: lag heartbeats, statistics appended in time buckets, alarm rules, alerts and
-- the mail they send, and the lease of the one node that runs the monitor.
-- Statistics rows are keyed by pipeline and bucket: each pipeline appends its own rows.
-- Every TIMESTAMP column has an explicit DEFAULT: without one, MariaDB before 10.10
-- (explicit_defaults_for_timestamp=OFF) gives the first TIMESTAMP of a table ON UPDATE
-- CURRENT_TIMESTAMP, which would move bucket keys at every upsert.

ALTER TABLE pipeline
  ADD COLUMN heartbeat_ms INT UNSIGNED NOT NULL DEFAULT 1000
    COMMENT 'how often the node writes a heartbeat row into ottr_sys on the source; 0 = off (lag from event timestamps)',
  ADD COLUMN restart_seq BIGINT UNSIGNED NOT NULL DEFAULT 0
    COMMENT 'bumped by restart_pipeline and by auto-recovery: the node running it restarts it',
  ADD CONSTRAINT ck_pipeline_heartbeat CHECK (heartbeat_ms = 0 OR heartbeat_ms BETWEEN 100 AND 3600000);

INSERT IGNORE INTO setting (name, value, min_value, max_value, unit, description) VALUES
  ('stat_bucket_s', 10, 1, 3600, 's', 'statistics are appended in time buckets of this length'),
  ('stat_retention_days', 14, 1, 3650, 'days', 'statistics rows older than this are deleted'),
  ('monitor_tick_ms', 1000, 100, 60000, 'ms', 'how often the monitor looks for due alarm rules and mail to send');

CREATE TABLE IF NOT EXISTS pipeline_lag (
  pipeline_id  INT UNSIGNED NOT NULL,
  lag_ms       BIGINT UNSIGNED NOT NULL COMMENT 'apply time (target clock) - heartbeat or event time (source clock)',
  method       ENUM('heartbeat','event_time') NOT NULL,
  source_time  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'the heartbeat (or event) time, by the source database''s clock',
  applied_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'when it was applied, by the target database''s clock',
  heartbeat_ms INT UNSIGNED NOT NULL COMMENT 'the heartbeat interval in force; 0 when off',
  measured_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
    COMMENT 'by this database''s clock: how old the measurement is',
  PRIMARY KEY (pipeline_id),
  CONSTRAINT fk_pipeline_lag_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS stat_pipeline (
  pipeline_id  INT UNSIGNED NOT NULL,
  bucket_start TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'UTC start of the bucket, by the node''s clock',
  bucket_s     SMALLINT UNSIGNED NOT NULL,
  inserts      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  updates      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  deletes      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ddls         BIGINT UNSIGNED NOT NULL DEFAULT 0,
  insert_bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
  update_bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
  delete_bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ddl_bytes    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  batches      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  select_us    BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'reading and decoding the binlog into batches',
  extract_us   BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'choosing the changes the table pairs select',
  transform_us BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'renaming and converting for the target',
  load_us      BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'applying on the target, positions included',
  lag_samples  BIGINT UNSIGNED NOT NULL DEFAULT 0,
  lag_sum_ms   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  lag_max_ms   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (pipeline_id, bucket_start),
  KEY ix_stat_pipeline_bucket (bucket_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS stat_lag (
  pipeline_id  INT UNSIGNED NOT NULL,
  bucket_start TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  le_ms        BIGINT UNSIGNED NOT NULL COMMENT 'histogram bucket: samples with lag <= le_ms and above the previous bound',
  samples      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (pipeline_id, bucket_start, le_ms),
  KEY ix_stat_lag_bucket (bucket_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS stat_table (
  pipeline_id  INT UNSIGNED NOT NULL,
  bucket_start TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  schema_name  VARCHAR(64) NOT NULL COMMENT 'source schema',
  table_name   VARCHAR(64) NOT NULL COMMENT 'source table',
  inserts      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  updates      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  deletes      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ddls         BIGINT UNSIGNED NOT NULL DEFAULT 0,
  bytes        BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (pipeline_id, bucket_start, schema_name, table_name),
  KEY ix_stat_table_bucket (bucket_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS smtp (
  id           TINYINT UNSIGNED NOT NULL DEFAULT 1,
  host         VARCHAR(255) NOT NULL,
  port         SMALLINT UNSIGNED NOT NULL,
  security     ENUM('none','starttls','tls') NOT NULL,
  user         VARCHAR(255) NULL,
  password     VARCHAR(1024) NULL COMMENT 'NULL, a literal, env:NAME or file:PATH (read by the node)',
  from_address VARCHAR(255) NOT NULL,
  updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  CONSTRAINT ck_smtp_singleton CHECK (id = 1),
  CONSTRAINT ck_smtp_port CHECK (port > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS alarm_rule (
  id                  INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name                VARCHAR(64) NOT NULL,
  kind                ENUM('lag','no_progress','pipeline_error','node_dead','error_text','binlog_retention') NOT NULL,
  pipeline_id         INT UNSIGNED NULL COMMENT 'NULL = every pipeline (every node for node_dead)',
  threshold           BIGINT UNSIGNED NULL COMMENT 'seconds (lag, no_progress, pipeline_error, node_dead) or binlog files (binlog_retention)',
  pattern             VARCHAR(255) NULL COMMENT 'error_text: a regular expression matched against error events',
  cron                VARCHAR(255) NOT NULL COMMENT 'when to check, UTC: 6 fields (sec min hour dom month dow, 1 = Sunday) or 5 unix fields',
  recipients          VARCHAR(1024) NOT NULL COMMENT 'comma-separated email addresses',
  quiet_period_s      INT UNSIGNED NOT NULL DEFAULT 1800 COMMENT 'at most one mail per rule and scope in this time',
  auto_recovery_after INT UNSIGNED NULL COMMENT 'restart the pipeline after this many checks in a row found the condition; NULL = never',
  status              ENUM('enabled','paused','disabled') NOT NULL DEFAULT 'enabled',
  paused_until        TIMESTAMP(6) NULL COMMENT 'a paused rule is enabled again at this time; NULL = until enabled by hand',
  created_at          TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at          TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_alarm_rule_name (name),
  CONSTRAINT fk_alarm_rule_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS alarm_window (
  id        INT UNSIGNED NOT NULL AUTO_INCREMENT,
  rule_id   INT UNSIGNED NOT NULL,
  days      SET('mon','tue','wed','thu','fri','sat','sun') NOT NULL,
  from_time TIME NOT NULL COMMENT 'UTC; a window whose to_time is before its from_time runs past midnight',
  to_time   TIME NOT NULL,
  PRIMARY KEY (id),
  KEY ix_alarm_window_rule (rule_id),
  CONSTRAINT fk_alarm_window_rule FOREIGN KEY (rule_id) REFERENCES alarm_rule (id) ON DELETE CASCADE,
  CONSTRAINT ck_alarm_window_days CHECK (days <> '')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS alarm_rule_state (
  rule_id         INT UNSIGNED NOT NULL,
  checked_at      TIMESTAMP(6) NULL COMMENT 'the last check, by this database''s clock',
  next_check_at   TIMESTAMP(6) NULL,
  problem         VARCHAR(1024) NULL COMMENT 'why the monitor cannot use this rule; NULL when it is valid',
  PRIMARY KEY (rule_id),
  CONSTRAINT fk_alarm_rule_state_rule FOREIGN KEY (rule_id) REFERENCES alarm_rule (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS alert (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  rule_id      INT UNSIGNED NOT NULL,
  scope        VARCHAR(130) NOT NULL COMMENT 'the pipeline or node the alert is about',
  pipeline_id  INT UNSIGNED NULL,
  state        ENUM('open','resolved') NOT NULL DEFAULT 'open',
  open_scope   VARCHAR(130) NULL COMMENT 'scope while open, NULL once resolved: one open alert per rule and scope',
  raised_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  last_seen_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'the last check that found the condition',
  resolved_at  TIMESTAMP(6) NULL,
  first_measured VARCHAR(1024) NOT NULL COMMENT 'what the check measured when it raised the alert',
  measured     VARCHAR(1024) NOT NULL COMMENT 'what the last check measured',
  repeats      INT UNSIGNED NOT NULL DEFAULT 1 COMMENT 'checks in a row that found the condition since the alert was raised or its pipeline restarted',
  recoveries   INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'pipeline restarts made by auto-recovery',
  mail_error   VARCHAR(1024) NULL COMMENT 'the last failed send of this alert''s mail',
  PRIMARY KEY (id),
  UNIQUE KEY uk_alert_open (rule_id, open_scope),
  KEY ix_alert_state (state, raised_at),
  CONSTRAINT fk_alert_rule FOREIGN KEY (rule_id) REFERENCES alarm_rule (id) ON DELETE CASCADE,
  CONSTRAINT ck_alert_open CHECK ((state = 'open') = (open_scope IS NOT NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS alert_mail (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  alert_id        BIGINT UNSIGNED NOT NULL,
  event           ENUM('raised','reminder','resolved') NOT NULL,
  recipients      VARCHAR(1024) NOT NULL,
  subject         VARCHAR(255) NOT NULL,
  body            TEXT NOT NULL,
  state           ENUM('pending','sent','suppressed','failed') NOT NULL DEFAULT 'pending',
  attempts        INT UNSIGNED NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  last_error      VARCHAR(1024) NULL,
  created_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  sent_at         TIMESTAMP(6) NULL,
  PRIMARY KEY (id),
  KEY ix_alert_mail_pending (state, next_attempt_at),
  KEY ix_alert_mail_alert (alert_id),
  CONSTRAINT fk_alert_mail_alert FOREIGN KEY (alert_id) REFERENCES alert (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS monitor_lease (
  id          TINYINT UNSIGNED NOT NULL DEFAULT 1,
  holder      VARCHAR(64) NULL COMMENT 'the node running the monitor; NULL when released',
  token       BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT '+1 at every acquisition',
  acquired_at TIMESTAMP(6) NULL,
  expires_at  TIMESTAMP(6) NULL COMMENT 'judged by this database''s NOW(6)',
  PRIMARY KEY (id),
  CONSTRAINT ck_monitor_lease_singleton CHECK (id = 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO monitor_lease (id) VALUES (1);
