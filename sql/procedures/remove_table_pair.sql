-- Removes a table pair (and its column pairs) from a channel.
CREATE PROCEDURE remove_table_pair(IN p_channel VARCHAR(1024), IN p_schema VARCHAR(1024),
                                   IN p_table VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL table_pair_id(p_channel, p_schema, p_table, v_id);
  DELETE FROM table_pair WHERE id = v_id;
END
