-- Two-way channels: the conflict policy of a channel (and, optionally, of a table pair), which
-- pipeline of a two-way channel runs backwards, and the conflict log.

ALTER TABLE channel
  ADD COLUMN primary_source_id INT UNSIGNED NULL
    COMMENT 'two_way: the data source whose version wins a conflict (primary_wins) or a tie (newer_wins)',
  ADD COLUMN conflict_policy ENUM('primary_wins','newer_wins') NOT NULL DEFAULT 'primary_wins',
  ADD COLUMN conflict_column VARCHAR(64) NULL
    COMMENT 'newer_wins: the timestamp or version column compared; the greater value wins';

ALTER TABLE pipeline
  ADD COLUMN reverse TINYINT(1) NOT NULL DEFAULT 0
    COMMENT 'two_way: the pipeline from data_source_b to data_source_a, which applies the table pairs inverted';

ALTER TABLE table_pair
  ADD COLUMN conflict_policy ENUM('primary_wins','newer_wins') NULL COMMENT 'NULL: the channel''s',
  ADD COLUMN conflict_column VARCHAR(64) NULL COMMENT 'newer_wins: the column compared; NULL: the channel''s';

CREATE TABLE IF NOT EXISTS conflict_log (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  pipeline_id  INT UNSIGNED NOT NULL,
  table_name   VARCHAR(130) NOT NULL COMMENT 'schema.table on the target of the pipeline',
  row_key      VARCHAR(1024) NOT NULL,
  kind         ENUM('insert','update','delete','unique_key') NOT NULL
    COMMENT 'the change that met a row it did not expect; unique_key: a collision on a key other than the primary',
  source_row   TEXT NULL COMMENT 'the version the source sent (NULL: deleted)',
  target_row   TEXT NULL COMMENT 'the version found on the target (NULL: missing)',
  decision     ENUM('source_applied','target_kept') NOT NULL,
  policy       VARCHAR(100) NOT NULL COMMENT 'the policy that decided, and why',
  detected_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY ix_conflict_log_time (detected_at),
  KEY ix_conflict_log_pipeline (pipeline_id, detected_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE alarm_rule
  MODIFY kind ENUM('lag','no_progress','pipeline_error','node_dead','error_text','binlog_retention','conflicts') NOT NULL;
