-- Makes a stopped pipeline start, next time, from p_position: 'FILE:POS', a MariaDB GTID
-- position ('0-1-42,1-2-7'), a MySQL GTID set ('uuid:1-42'), a UTC timestamp
-- ('2026-11-22 08:00:00'), 'now' (this moment) or 'end' (the source's end when it starts).
-- The saved position is forgotten and the lease's fencing token is bumped, so a node that
-- still runs the pipeline can no longer write its old position back.
CREATE PROCEDURE reset_position(IN p_ref VARCHAR(1024), IN p_position VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_count INT;
  DECLARE v_id INT UNSIGNED;
  DECLARE v_position VARCHAR(1024) DEFAULT TRIM(COALESCE(p_position, ''));
  CALL pipeline_count(p_ref, v_count);
  IF v_count > 1 THEN
    CALL raise_error(CONCAT('channel ''', LEFT(p_ref, 64), ''' has ', v_count, ' pipelines: name one pipeline'));
  END IF;
  SELECT p.id INTO v_id FROM pipeline p JOIN channel c ON c.id = p.channel_id
   WHERE p.name = p_ref OR c.name = p_ref;
  IF EXISTS (SELECT 1 FROM pipeline p JOIN channel c ON c.id = p.channel_id WHERE p.id = v_id AND c.desired = 'running') THEN
    CALL raise_error(CONCAT('pipeline ''', LEFT(p_ref, 64), ''' is running: CALL stop_channel first'));
  END IF;
  IF EXISTS (SELECT 1 FROM pipeline_lease WHERE pipeline_id = v_id AND holder IS NOT NULL AND expires_at > NOW(6)) THEN
    CALL raise_error(CONCAT('pipeline ''', LEFT(p_ref, 64), ''' is still stopping on its node: try again in a moment'));
  END IF;
  IF LOWER(v_position) = 'end' THEN
    UPDATE pipeline SET start_kind = 'end', start_file = NULL, start_offset = NULL, start_gtid = NULL, start_time = NULL WHERE id = v_id;
  ELSEIF LOWER(v_position) = 'now' THEN
    UPDATE pipeline SET start_kind = 'timestamp', start_file = NULL, start_offset = NULL, start_gtid = NULL, start_time = UTC_TIMESTAMP(6) WHERE id = v_id;
  ELSEIF v_position REGEXP '^[0-9]{1,10}-[0-9]{1,10}-[0-9]{1,20}(,[0-9]{1,10}-[0-9]{1,10}-[0-9]{1,20})*$'
      OR v_position REGEXP '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(:[0-9]+(-[0-9]+)?)+(, *[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(:[0-9]+(-[0-9]+)?)+)*$' THEN
    UPDATE pipeline SET start_kind = 'gtid', start_file = NULL, start_offset = NULL, start_gtid = v_position, start_time = NULL WHERE id = v_id;
  ELSEIF v_position REGEXP '^[A-Za-z0-9_.-]+:[0-9]{1,19}$' THEN
    IF CAST(SUBSTRING_INDEX(v_position, ':', -1) AS UNSIGNED) < 4 THEN
      CALL raise_error(CONCAT('position ''', LEFT(v_position, 60), ''': a binlog offset starts at 4'));
    END IF;
    UPDATE pipeline SET start_kind = 'file', start_file = SUBSTRING_INDEX(v_position, ':', 1),
           start_offset = CAST(SUBSTRING_INDEX(v_position, ':', -1) AS UNSIGNED),
           start_gtid = NULL, start_time = NULL WHERE id = v_id;
  ELSEIF v_position REGEXP '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?$'
      AND CAST(REPLACE(v_position, 'T', ' ') AS DATETIME(6)) IS NOT NULL THEN
    UPDATE pipeline SET start_kind = 'timestamp', start_file = NULL, start_offset = NULL, start_gtid = NULL,
           start_time = CAST(REPLACE(v_position, 'T', ' ') AS DATETIME(6)) WHERE id = v_id;
  ELSE
    CALL raise_error(CONCAT('position ''', LEFT(v_position, 40), ''' is not FILE:POS, a GTID, a UTC timestamp, now or end'));
  END IF;
  -- fence first, so that no late write of the old position can follow the delete
  START TRANSACTION;
  UPDATE pipeline_lease SET token = token + 1, holder = NULL, expires_at = NOW(6) WHERE pipeline_id = v_id;
  DELETE FROM pipeline_position WHERE pipeline_id = v_id;
  COMMIT;
END
