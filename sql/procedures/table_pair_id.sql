-- The id of the table pair of channel p_channel whose source is p_schema.p_table, or an error.
CREATE PROCEDURE table_pair_id(IN p_channel VARCHAR(1024), IN p_schema VARCHAR(1024),
                               IN p_table VARCHAR(1024), OUT p_id INT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_channel INT UNSIGNED;
  CALL channel_id(p_channel, v_channel);
  SET p_id = NULL;
  SELECT id INTO p_id FROM table_pair
   WHERE channel_id = v_channel AND source_schema = p_schema AND source_table = p_table;
  IF p_id IS NULL THEN
    CALL raise_error(CONCAT('channel ''', p_channel, ''' has no table pair for ',
      LEFT(COALESCE(p_schema, 'NULL'), 40), '.', LEFT(COALESCE(p_table, 'NULL'), 40)));
  END IF;
END
