-- Removes the column pair of one column of a table pair.
CREATE PROCEDURE remove_column_pair(IN p_channel VARCHAR(1024), IN p_schema VARCHAR(1024),
                                    IN p_table VARCHAR(1024), IN p_column VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL table_pair_id(p_channel, p_schema, p_table, v_id);
  DELETE FROM column_pair WHERE table_pair_id = v_id AND source_column = p_column;
  IF ROW_COUNT() = 0 THEN
    CALL raise_error(CONCAT('column ', LEFT(COALESCE(p_column, 'NULL'), 64), ' has no column pair'));
  END IF;
END
