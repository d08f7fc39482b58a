-- Adds source p_schema.p_table (exact names, or anchored regexes) to a channel, copied to
-- p_target_schema.p_target_table (NULL: the same name as the source).
CREATE PROCEDURE add_table_pair(IN p_channel VARCHAR(1024), IN p_schema VARCHAR(1024),
                                IN p_table VARCHAR(1024), IN p_target_schema VARCHAR(1024),
                                IN p_target_table VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL channel_id(p_channel, v_id);
  CALL check_table_name('schema', p_schema);
  CALL check_table_name('table', p_table);
  CALL check_target_name('schema', p_target_schema);
  CALL check_target_name('table', p_target_table);
  IF p_schema IN ('ottr_sys', 'mysql', 'information_schema', 'performance_schema', 'sys') THEN
    CALL raise_error(CONCAT('schema ', p_schema, ' is a system schema and is never synced'));
  END IF;
  -- a regex such as '.*' is fine: system schemas are left out when names are matched
  IF EXISTS (SELECT 1 FROM table_pair WHERE channel_id = v_id AND source_schema = p_schema AND source_table = p_table) THEN
    CALL raise_error(CONCAT('channel ''', p_channel, ''' already has a table pair for ', LEFT(p_schema, 40), '.', LEFT(p_table, 40)));
  END IF;
  IF EXISTS (SELECT 1 FROM pipeline WHERE channel_id = v_id AND source_id = target_id)
     AND COALESCE(p_target_schema, p_schema) = p_schema AND COALESCE(p_target_table, p_table) = p_table THEN
    CALL raise_error(CONCAT('source and target are the same server: ', LEFT(p_schema, 40), '.', LEFT(p_table, 40), ' would be copied onto itself'));
  END IF;
  IF EXISTS (SELECT 1 FROM channel WHERE id = v_id AND mode = 'two_way')
     AND (COALESCE(p_target_schema, p_schema) <> p_schema OR COALESCE(p_target_table, p_table) <> p_table)
     AND (p_schema REGEXP '[*?+|(){}$^.\\[\\]\\\\]' OR p_table REGEXP '[*?+|(){}$^.\\[\\]\\\\]') THEN
    CALL raise_error('a two-way pair that renames must use exact names: a renaming regex cannot be inverted');
  END IF;
  INSERT INTO table_pair (channel_id, source_schema, source_table, target_schema, target_table)
  VALUES (v_id, p_schema, p_table, p_target_schema, p_target_table);
END
