-- Asks the nodes to run every pipeline of the channel. Nodes act on it within a poll interval.
CREATE PROCEDURE start_channel(IN p_name VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL channel_id(p_name, v_id);
  IF NOT EXISTS (SELECT 1 FROM table_pair WHERE channel_id = v_id) THEN
    CALL raise_error(CONCAT('channel ''', p_name, ''' has no table pairs: CALL add_table_pair first'));
  END IF;
  UPDATE channel SET desired = 'running' WHERE id = v_id;
END
