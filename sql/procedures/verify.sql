-- Verifies that the target of a pipeline (or of a channel: its forward pipeline, which on a
-- two-way channel compares both sides) equals its source, while both take writes: every
-- paired table, those of p_schema, or p_schema.p_table (an exact name or an anchored regex),
-- as the running pipeline last listed its source tables (source_table, every 30 s). Returns
-- the new job's id (column `job`); its tables are in v_verify, queued, when the CALL
-- returns. Differences land in v_verify_diff; repair_differences(job) repairs them (or the
-- pipeline option verify_repair, at once).
CREATE PROCEDURE verify(IN p_ref VARCHAR(1024), IN p_schema VARCHAR(1024), IN p_table VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_count INT;
  DECLARE v_pipeline INT UNSIGNED;
  DECLARE v_channel VARCHAR(64);
  DECLARE v_desired VARCHAR(16);
  DECLARE v_repair BOOLEAN;
  DECLARE v_regex BOOLEAN DEFAULT FALSE;
  DECLARE v_job BIGINT UNSIGNED;
  CALL pipeline_count(p_ref, v_count);
  SELECT p.id, c.name, c.desired, p.verify_repair INTO v_pipeline, v_channel, v_desired, v_repair
    FROM pipeline p JOIN channel c ON c.id = p.channel_id
   WHERE p.name = p_ref OR c.name = p_ref
   ORDER BY p.reverse, p.id LIMIT 1;
  IF v_desired <> 'running' THEN
    CALL raise_error(CONCAT('channel ''', v_channel, ''' is stopped: start_channel(''', v_channel,
      ''') first (a verification runs beside the stream)'));
  END IF;
  IF p_schema IS NOT NULL AND (p_schema = '' OR CHAR_LENGTH(p_schema) > 64
     OR p_schema REGEXP '[*?+|(){}$^.\\[\\]\\\\]') THEN
    CALL raise_error(CONCAT('the source schema must be one exact name or NULL, not ''', LEFT(p_schema, 64), ''''));
  END IF;
  IF p_table IS NOT NULL THEN
    IF p_schema IS NULL THEN
      CALL raise_error('a table needs its schema: verify(pipeline, schema, table)');
    END IF;
    CALL check_table_name('table', p_table);
    SET v_regex = p_table REGEXP '[*?+|(){}$^.\\[\\]\\\\]';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM source_table st WHERE st.pipeline_id = v_pipeline) THEN
    CALL raise_error(CONCAT('the pipeline of channel ''', v_channel,
      ''' has not listed its source tables yet (it does so as it starts): try again in a few seconds'));
  END IF;
  SELECT COUNT(*) INTO v_count FROM source_table st
   WHERE st.pipeline_id = v_pipeline
     AND (p_schema IS NULL OR st.source_schema = p_schema)
     AND (p_table IS NULL OR (v_regex AND st.source_table REGEXP CONCAT('^(', p_table, ')$'))
          OR (NOT v_regex AND st.source_table = p_table));
  IF v_count = 0 THEN
    CALL raise_error(CONCAT('no paired source table of channel ''', v_channel, ''' matches ''',
      COALESCE(p_schema, '*'), '.', LEFT(COALESCE(p_table, '*'), 60),
      ''' (as the running pipeline last listed them, every 30 s: see source_table)'));
  END IF;
  INSERT INTO verify_job (pipeline_id, source_schema, source_table, repair, created_by)
  VALUES (v_pipeline, p_schema, p_table, v_repair, CURRENT_USER());
  SET v_job = LAST_INSERT_ID();
  INSERT INTO verify_table (job_id, source_schema, source_table, rows_estimated)
  SELECT v_job, st.source_schema, st.source_table, st.rows_estimated FROM source_table st
   WHERE st.pipeline_id = v_pipeline
     AND (p_schema IS NULL OR st.source_schema = p_schema)
     AND (p_table IS NULL OR (v_regex AND st.source_table REGEXP CONCAT('^(', p_table, ')$'))
          OR (NOT v_regex AND st.source_table = p_table));
  SELECT v_job AS job;
END
