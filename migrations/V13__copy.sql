-- Online copy (issue #11): copy jobs and their tables, the source tables a running pipeline
-- sees (what a copy_tables regex is matched against), the pipeline options of the copy, and
-- the copy_failed alarm kind. Progress that must survive a crash lives on the target, in
-- ottr_sys.copy_progress, committed with the copied rows; these rows mirror it.

ALTER TABLE pipeline
  ADD COLUMN IF NOT EXISTS initial_copy BOOLEAN NOT NULL DEFAULT FALSE
    COMMENT 'the first start of the pipeline copies every paired table while it streams',
  ADD COLUMN IF NOT EXISTS copy_chunk_ms INT UNSIGNED NOT NULL DEFAULT 500
    COMMENT 'the time one copy chunk should take to read and apply: chunk sizes adapt to it',
  ADD COLUMN IF NOT EXISTS copy_max_lag_ms INT UNSIGNED NOT NULL DEFAULT 10000
    COMMENT 'copies wait while the pipeline lags more than this: streaming comes first';

CREATE TABLE IF NOT EXISTS copy_job (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  pipeline_id   INT UNSIGNED NOT NULL,
  source_schema VARCHAR(64) NULL COMMENT 'NULL: every paired table (initial_copy)',
  table_pattern VARCHAR(255) NULL COMMENT 'an exact name, or an anchored regex as in table_pair; NULL: every paired table',
  where_clause  TEXT NULL COMMENT 'a condition on the source rows; NULL: every row',
  origin        ENUM('copy_tables','initial_copy') NOT NULL DEFAULT 'copy_tables',
  requested     ENUM('run','pause','cancel') NOT NULL DEFAULT 'run'
    COMMENT 'what the operator asked (pause_copy, resume_copy, cancel_copy): the node acts before its next chunk',
  expanded      BOOLEAN NOT NULL DEFAULT FALSE COMMENT 'the node has listed the tables the pattern matches',
  created_by    VARCHAR(288) NOT NULL DEFAULT '',
  created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY ix_copy_job_pipeline (pipeline_id),
  CONSTRAINT fk_copy_job_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS copy_table (
  job_id         BIGINT UNSIGNED NOT NULL,
  source_schema  VARCHAR(64) NOT NULL,
  source_table   VARCHAR(64) NOT NULL,
  target_name    VARCHAR(130) NULL COMMENT 'schema.table on the target, once the node has mapped it',
  state          ENUM('queued','copying','done','failed','cancelled','paused') NOT NULL DEFAULT 'queued',
  rows_copied    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rows_estimated BIGINT UNSIGNED NULL COMMENT 'the source''s estimate (information_schema.TABLES.TABLE_ROWS)',
  chunks_done    INT UNSIGNED NOT NULL DEFAULT 0,
  rows_per_s     DOUBLE NULL COMMENT 'over the last minute',
  started_at     TIMESTAMP(6) NULL DEFAULT NULL,
  finished_at    TIMESTAMP(6) NULL DEFAULT NULL,
  last_error     TEXT NULL,
  updated_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (job_id, source_schema, source_table),
  CONSTRAINT fk_copy_table_job FOREIGN KEY (job_id) REFERENCES copy_job (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS source_table (
  pipeline_id    INT UNSIGNED NOT NULL,
  source_schema  VARCHAR(64) NOT NULL,
  source_table   VARCHAR(64) NOT NULL,
  rows_estimated BIGINT UNSIGNED NULL,
  refreshed_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (pipeline_id, source_schema, source_table),
  CONSTRAINT fk_source_table_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
  COMMENT 'the paired source tables a running pipeline sees, refreshed by its node';

ALTER TABLE alarm_rule
  MODIFY kind ENUM('lag','no_progress','pipeline_error','node_dead','error_text','binlog_retention','conflicts','copy_failed') NOT NULL;
