-- Asks the nodes to stop every pipeline of the channel; positions are kept.
CREATE PROCEDURE stop_channel(IN p_name VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL channel_id(p_name, v_id);
  UPDATE channel SET desired = 'stopped' WHERE id = v_id;
END
