-- Sets one option of a pipeline (or of every pipeline of a channel). Options:
-- batch_rows, batch_bytes, batch_timeout_ms, load_parallelism, server_id (numbers);
-- heartbeat_ms (0 = off, else 100 to 3600000); ddl_sync, skip_ddl_errors, skip_load_errors,
-- transactional, initial_copy, verify_repair (on/off); copy_chunk_ms (10 to 60000),
-- copy_max_lag_ms (100 to 86400000), both also for verifications; verify_schedule (a cron
-- expression, or NULL for none). Nodes restart the pipeline to apply it.
CREATE PROCEDURE set_pipeline_option(IN p_ref VARCHAR(1024), IN p_option VARCHAR(1024),
                                     IN p_value VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_count INT;
  DECLARE v_number BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_flag BOOLEAN DEFAULT NULL;
  CALL pipeline_count(p_ref, v_count);
  IF p_value REGEXP '^[0-9]{1,15}$' THEN
    SET v_number = CAST(p_value AS UNSIGNED);
  END IF;
  IF LOWER(p_value) IN ('on', 'true', '1', 'yes') THEN
    SET v_flag = TRUE;
  ELSEIF LOWER(p_value) IN ('off', 'false', '0', 'no') THEN
    SET v_flag = FALSE;
  END IF;
  CASE p_option
    WHEN 'batch_rows' THEN
      IF v_number IS NULL OR v_number NOT BETWEEN 1 AND 1000000 THEN
        CALL raise_error(CONCAT('batch_rows must be a number from 1 to 1000000, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.batch_rows = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'batch_bytes' THEN
      IF v_number IS NULL OR v_number NOT BETWEEN 1024 AND 4294967296 THEN
        CALL raise_error(CONCAT('batch_bytes must be a number from 1024 to 4294967296, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.batch_bytes = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'batch_timeout_ms' THEN
      IF v_number IS NULL OR v_number NOT BETWEEN 1 AND 3600000 THEN
        CALL raise_error(CONCAT('batch_timeout_ms must be a number from 1 to 3600000, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.batch_timeout_ms = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'load_parallelism' THEN
      IF v_number IS NULL OR v_number NOT BETWEEN 1 AND 256 THEN
        CALL raise_error(CONCAT('load_parallelism must be a number from 1 to 256, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.load_parallelism = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'server_id' THEN
      IF p_value IS NOT NULL AND (v_number IS NULL OR v_number NOT BETWEEN 1 AND 4294967295) THEN
        CALL raise_error(CONCAT('server_id must be a number from 1 to 4294967295 or NULL, not ''', LEFT(p_value, 30), ''''));
      END IF;
      IF v_count > 1 AND p_value IS NOT NULL THEN
        CALL raise_error(CONCAT('''', LEFT(p_ref, 64), ''' has ', v_count, ' pipelines: set server_id on each pipeline'));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.server_id = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'ddl_sync' THEN
      IF v_flag IS NULL THEN
        CALL raise_error(CONCAT('ddl_sync must be on or off, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.ddl_sync = v_flag WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'skip_ddl_errors' THEN
      IF v_flag IS NULL THEN
        CALL raise_error(CONCAT('skip_ddl_errors must be on or off, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.skip_ddl_errors = v_flag WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'skip_load_errors' THEN
      IF v_flag IS NULL THEN
        CALL raise_error(CONCAT('skip_load_errors must be on or off, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.skip_load_errors = v_flag WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'transactional' THEN
      IF v_flag IS NULL THEN
        CALL raise_error(CONCAT('transactional must be on or off, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.transactional = v_flag WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'heartbeat_ms' THEN
      IF v_number IS NULL OR (v_number <> 0 AND v_number NOT BETWEEN 100 AND 3600000) THEN
        CALL raise_error(CONCAT('heartbeat_ms must be 0 (off) or a number from 100 to 3600000, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.heartbeat_ms = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'initial_copy' THEN
      IF v_flag IS NULL THEN
        CALL raise_error(CONCAT('initial_copy must be on or off, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.initial_copy = v_flag WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'copy_chunk_ms' THEN
      IF v_number IS NULL OR v_number NOT BETWEEN 10 AND 60000 THEN
        CALL raise_error(CONCAT('copy_chunk_ms must be a number from 10 to 60000, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.copy_chunk_ms = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'copy_max_lag_ms' THEN
      IF v_number IS NULL OR v_number NOT BETWEEN 100 AND 86400000 THEN
        CALL raise_error(CONCAT('copy_max_lag_ms must be a number from 100 to 86400000, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.copy_max_lag_ms = v_number WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'verify_repair' THEN
      IF v_flag IS NULL THEN
        CALL raise_error(CONCAT('verify_repair must be on or off, not ''', LEFT(COALESCE(p_value, 'NULL'), 30), ''''));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.verify_repair = v_flag WHERE p.name = p_ref OR c.name = p_ref;
    WHEN 'verify_schedule' THEN
      IF p_value IS NOT NULL AND cron_problem(p_value) IS NOT NULL THEN
        CALL raise_error(CONCAT('verify_schedule: ', cron_problem(p_value)));
      END IF;
      UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.verify_schedule = NULLIF(TRIM(p_value), '') WHERE p.name = p_ref OR c.name = p_ref;
    ELSE
      CALL raise_error(CONCAT('unknown pipeline option ''', LEFT(COALESCE(p_option, 'NULL'), 40),
        ''' (see the pipeline table''s columns)'));
  END CASE;
END
