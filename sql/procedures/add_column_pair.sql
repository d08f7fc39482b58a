-- Includes (optionally renaming) or excludes one column of a table pair. A table pair is
-- either an include list or an exclude list, never both.
CREATE PROCEDURE add_column_pair(IN p_channel VARCHAR(1024), IN p_schema VARCHAR(1024),
                                 IN p_table VARCHAR(1024), IN p_mode VARCHAR(1024),
                                 IN p_column VARCHAR(1024), IN p_target_column VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL table_pair_id(p_channel, p_schema, p_table, v_id);
  IF p_mode IS NULL OR p_mode NOT IN ('include', 'exclude') THEN
    CALL raise_error(CONCAT('unknown column pair mode ''', LEFT(COALESCE(p_mode, 'NULL'), 40), ''': use include or exclude'));
  END IF;
  IF p_column IS NULL OR p_column = '' OR CHAR_LENGTH(p_column) > 64 THEN
    CALL raise_error(CONCAT('column name ''', LEFT(COALESCE(p_column, 'NULL'), 40), ''' must have 1-64 characters'));
  END IF;
  IF p_mode = 'exclude' AND p_target_column IS NOT NULL THEN
    CALL raise_error(CONCAT('column ', LEFT(p_column, 64), ' is excluded, so it cannot be renamed'));
  END IF;
  CALL check_target_name('column', p_target_column);
  IF EXISTS (SELECT 1 FROM column_pair WHERE table_pair_id = v_id AND mode <> p_mode) THEN
    CALL raise_error(CONCAT('table pair ', LEFT(p_schema, 30), '.', LEFT(p_table, 30), ' already has ',
      IF(p_mode = 'include', 'exclude', 'include'), ' columns: a pair is either include or exclude'));
  END IF;
  IF EXISTS (SELECT 1 FROM column_pair WHERE table_pair_id = v_id AND source_column = p_column) THEN
    CALL raise_error(CONCAT('column ', LEFT(p_column, 64), ' already has a column pair'));
  END IF;
  INSERT INTO column_pair (table_pair_id, mode, source_column, target_column)
  VALUES (v_id, p_mode, p_column, p_target_column);
END
