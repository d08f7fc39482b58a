-- Removes a data source that no channel uses.
CREATE PROCEDURE drop_data_source(IN p_name VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED DEFAULT NULL;
  DECLARE v_channel VARCHAR(64) DEFAULT NULL;
  CALL data_source_id('', p_name, v_id);
  SELECT MIN(c.name) INTO v_channel FROM pipeline p JOIN channel c ON c.id = p.channel_id
   WHERE p.source_id = v_id OR p.target_id = v_id;
  IF v_channel IS NOT NULL THEN
    CALL raise_error(CONCAT('data source ''', p_name, ''' is still used by channel ''', v_channel,
      '''; drop the channel first'));
  END IF;
  DELETE FROM data_source WHERE id = v_id;
END
