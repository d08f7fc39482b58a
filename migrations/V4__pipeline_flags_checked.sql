-- BOOLEAN is TINYINT: without a check, a hand-written UPDATE could store 2 in a flag.
ALTER TABLE pipeline ADD CONSTRAINT ck_pipeline_flags
  CHECK (ddl_sync IN (0, 1) AND skip_ddl_errors IN (0, 1) AND transactional IN (0, 1));
