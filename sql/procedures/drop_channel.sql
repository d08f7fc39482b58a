-- Deletes a stopped channel with its pipelines, table pairs, positions and leases.
CREATE PROCEDURE drop_channel(IN p_name VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL channel_id(p_name, v_id);
  IF EXISTS (SELECT 1 FROM channel WHERE id = v_id AND desired = 'running') THEN
    CALL raise_error(CONCAT('channel ''', p_name, ''' is running: CALL stop_channel first'));
  END IF;
  DELETE FROM channel WHERE id = v_id;
END
