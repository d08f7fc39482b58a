-- Opt-in: rows the target rejects are written to skipped_row instead of stopping the pipeline.
ALTER TABLE pipeline
  ADD COLUMN skip_load_errors BOOLEAN NOT NULL DEFAULT FALSE,
  ADD CONSTRAINT ck_pipeline_skip_load_errors CHECK (skip_load_errors IN (0, 1));

CREATE TABLE IF NOT EXISTS skipped_row (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  pipeline_id     INT UNSIGNED NOT NULL,
  at              TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  target_table    VARCHAR(130) NOT NULL,
  row_key         VARCHAR(1024) NOT NULL COMMENT 'the key (or first columns) and the source position',
  error           VARCHAR(1024) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_skipped_row_pipeline (pipeline_id, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
