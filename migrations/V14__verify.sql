-- Verify and repair (issue #12): verification jobs, their tables and the differing keys they
-- found, the pipeline options of verification (verify_repair, verify_schedule), and the
-- verify_mismatch alarm kind. A verification walks each table's primary key in chunks
-- compared at one point of the stream (see the node's pipeline::verify); these rows are where
-- it stands, so that a job resumes at its last chunk after a crash.

ALTER TABLE pipeline
  ADD COLUMN IF NOT EXISTS verify_repair BOOLEAN NOT NULL DEFAULT FALSE
    COMMENT 'differences a verification finds are repaired through the pipeline at once',
  ADD COLUMN IF NOT EXISTS verify_schedule VARCHAR(255) NULL
    COMMENT 'a cron expression: the channel is verified at these times; NULL: only on request';

CREATE TABLE IF NOT EXISTS verify_job (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  pipeline_id   INT UNSIGNED NOT NULL,
  source_schema VARCHAR(64) NULL COMMENT 'NULL: every paired table',
  source_table  VARCHAR(64) NULL COMMENT 'NULL: every paired table of the schema',
  origin        ENUM('verify','schedule') NOT NULL DEFAULT 'verify',
  requested     ENUM('run','cancel') NOT NULL DEFAULT 'run'
    COMMENT 'cancel_verify: the node stops before its next chunk',
  repair        BOOLEAN NOT NULL DEFAULT FALSE
    COMMENT 'its differences are repaired as they are found (verify_repair, or repair_differences)',
  created_by    VARCHAR(288) NOT NULL DEFAULT '',
  created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY ix_verify_job_pipeline (pipeline_id, origin, created_at),
  CONSTRAINT fk_verify_job_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS verify_table (
  job_id          BIGINT UNSIGNED NOT NULL,
  source_schema   VARCHAR(64) NOT NULL,
  source_table    VARCHAR(64) NOT NULL,
  target_name     VARCHAR(130) NULL COMMENT 'schema.table on the target, once the node has mapped it',
  state           ENUM('queued','verifying','done','failed','cancelled') NOT NULL DEFAULT 'queued',
  key_columns     TEXT NULL COMMENT 'the key walked, as JSON: a resumed job with another key starts over',
  last_key        MEDIUMTEXT NULL COMMENT 'the last key of the last chunk compared, as JSON',
  chunks_done     INT UNSIGNED NOT NULL DEFAULT 0,
  chunks_total    INT UNSIGNED NULL COMMENT 'an estimate, from the row estimate and the chunk size',
  rows_compared   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rows_differing  BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rows_unverified BIGINT UNSIGNED NOT NULL DEFAULT 0
    COMMENT 'keys that changed in every window they were compared in',
  rows_estimated  BIGINT UNSIGNED NULL,
  rows_per_s      DOUBLE NULL COMMENT 'over the last minute',
  started_at      TIMESTAMP(6) NULL DEFAULT NULL,
  finished_at     TIMESTAMP(6) NULL DEFAULT NULL,
  last_error      TEXT NULL,
  updated_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (job_id, source_schema, source_table),
  CONSTRAINT fk_verify_table_job FOREIGN KEY (job_id) REFERENCES verify_job (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS verify_diff (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  job_id        BIGINT UNSIGNED NOT NULL,
  source_schema VARCHAR(64) NOT NULL,
  source_table  VARCHAR(64) NOT NULL,
  row_key       TEXT NOT NULL COMMENT 'the key''s values as text, comma-separated',
  key_json      MEDIUMTEXT NOT NULL COMMENT 'the key''s values as the node reads them back',
  key_hash      BINARY(32) NOT NULL,
  kind          ENUM('missing_on_target','extra_on_target','different','unverified') NOT NULL,
  columns       TEXT NULL COMMENT 'different: the columns whose values differ',
  detected_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  repair        ENUM('pending','repaired','still_different') NULL
    COMMENT 'pending: asked (repair_differences, verify_repair); then how the re-check found it',
  repaired_at   TIMESTAMP(6) NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_verify_diff_key (job_id, source_schema, source_table, key_hash),
  KEY ix_verify_diff_repair (repair, job_id),
  CONSTRAINT fk_verify_diff_job FOREIGN KEY (job_id) REFERENCES verify_job (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE alarm_rule
  MODIFY kind ENUM('lag','no_progress','pipeline_error','node_dead','error_text','binlog_retention','conflicts','copy_failed','verify_mismatch') NOT NULL;
