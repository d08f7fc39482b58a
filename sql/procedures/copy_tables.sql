-- Copies the current rows of the source tables p_schema.p_table (an exact name, or an anchored
-- regex as in add_table_pair) of a pipeline (or of a one-way channel's pipeline) into its
-- target while the pipeline streams, optionally only the rows where p_where holds. Returns the
-- new job's id (column `job`); its tables are in v_copy, queued, when the CALL returns. A regex
-- is matched against the source tables the running pipeline last listed (source_table, kept
-- by its node); an exact name is taken as it is and checked by the node.
CREATE PROCEDURE copy_tables(IN p_ref VARCHAR(1024), IN p_schema VARCHAR(1024),
                             IN p_table VARCHAR(1024), IN p_where TEXT)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_count INT;
  DECLARE v_pipeline INT UNSIGNED;
  DECLARE v_channel VARCHAR(64);
  DECLARE v_desired VARCHAR(16);
  DECLARE v_reverse BOOLEAN;
  DECLARE v_regex BOOLEAN;
  DECLARE v_problem VARCHAR(1024);
  DECLARE v_job BIGINT UNSIGNED;
  CALL pipeline_count(p_ref, v_count);
  IF v_count > 1 THEN
    CALL raise_error(CONCAT('''', LEFT(p_ref, 64), ''' has ', v_count,
      ' pipelines: name the pipeline to copy along (see v_pipeline_status)'));
  END IF;
  SELECT p.id, c.name, c.desired, p.reverse INTO v_pipeline, v_channel, v_desired, v_reverse
    FROM pipeline p JOIN channel c ON c.id = p.channel_id
   WHERE p.name = p_ref OR c.name = p_ref;
  IF v_desired <> 'running' THEN
    CALL raise_error(CONCAT('channel ''', v_channel, ''' is stopped: start_channel(''', v_channel,
      ''') first (or set initial_copy on before its first start)'));
  END IF;
  IF p_schema IS NULL OR p_schema = '' OR CHAR_LENGTH(p_schema) > 64
     OR p_schema REGEXP '[*?+|(){}$^.\\[\\]\\\\]' THEN
    CALL raise_error(CONCAT('the source schema must be one exact name, not ''', LEFT(COALESCE(p_schema, 'NULL'), 64), ''''));
  END IF;
  CALL check_table_name('table', p_table);
  SET v_regex = p_table REGEXP '[*?+|(){}$^.\\[\\]\\\\]';
  IF p_where IS NOT NULL THEN
    IF CHAR_LENGTH(p_where) > 4000 THEN
      CALL raise_error('the WHERE condition is longer than 4000 characters');
    END IF;
    CALL where_problem(p_where, v_problem);
    IF v_problem IS NOT NULL THEN
      CALL raise_error(CONCAT('the WHERE condition does not parse: ', v_problem));
    END IF;
  END IF;
  -- which pairs select the table (on a reverse pipeline, the pairs' target side is its source)
  SELECT COUNT(*) INTO v_count FROM (
      SELECT IF(v_reverse, COALESCE(tp.target_schema, tp.source_schema), tp.source_schema) AS schema_pattern,
             IF(v_reverse, COALESCE(tp.target_table, tp.source_table), tp.source_table) AS table_pattern
        FROM table_pair tp
       WHERE tp.channel_id = (SELECT channel_id FROM pipeline WHERE id = v_pipeline)) pairs
   WHERE (schema_pattern = p_schema
          OR (schema_pattern REGEXP '[*?+|(){}$^.\\[\\]\\\\]'
              AND p_schema REGEXP CONCAT('^(', schema_pattern, ')$')))
     AND (v_regex
          OR table_pattern = p_table
          OR (table_pattern REGEXP '[*?+|(){}$^.\\[\\]\\\\]'
              AND p_table REGEXP CONCAT('^(', table_pattern, ')$')));
  IF v_count = 0 THEN
    CALL raise_error(CONCAT('table ''', p_schema, '.', LEFT(p_table, 64), ''' is outside the table pairs of channel ''',
      v_channel, ''' (add_table_pair first)'));
  END IF;
  IF v_regex AND NOT EXISTS (
      SELECT 1 FROM source_table st
       WHERE st.pipeline_id = v_pipeline AND st.source_schema = p_schema
         AND st.source_table REGEXP CONCAT('^(', p_table, ')$')) THEN
    CALL raise_error(CONCAT('no source table of ''', p_schema, ''' matches ''', LEFT(p_table, 60),
      ''' (as the running pipeline last listed them: see source_table)'));
  END IF;
  INSERT INTO copy_job (pipeline_id, source_schema, table_pattern, where_clause, created_by)
  VALUES (v_pipeline, p_schema, p_table, p_where, CURRENT_USER());
  SET v_job = LAST_INSERT_ID();
  IF v_regex THEN
    INSERT INTO copy_table (job_id, source_schema, source_table, rows_estimated)
    SELECT v_job, st.source_schema, st.source_table, st.rows_estimated FROM source_table st
     WHERE st.pipeline_id = v_pipeline AND st.source_schema = p_schema
       AND st.source_table REGEXP CONCAT('^(', p_table, ')$');
  ELSE
    INSERT INTO copy_table (job_id, source_schema, source_table, rows_estimated)
    SELECT v_job, p_schema, p_table,
           (SELECT st.rows_estimated FROM source_table st WHERE st.pipeline_id = v_pipeline
               AND st.source_schema = p_schema AND st.source_table = p_table);
  END IF;
  SELECT v_job AS job;
END
