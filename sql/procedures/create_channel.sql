-- Creates a one-way channel from p_source to p_target (data source names; they may be the same
-- server) with its one pipeline, named like the channel. The channel starts stopped.
CREATE PROCEDURE create_channel(IN p_name VARCHAR(1024), IN p_source VARCHAR(1024),
                                IN p_target VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_source INT UNSIGNED DEFAULT NULL;
  DECLARE v_target INT UNSIGNED DEFAULT NULL;
  CALL check_name('channel', p_name);
  IF EXISTS (SELECT 1 FROM channel WHERE name = p_name) OR EXISTS (SELECT 1 FROM pipeline WHERE name = p_name) THEN
    CALL raise_error(CONCAT('channel ''', p_name, ''' already exists'));
  END IF;
  CALL data_source_id('source ', p_source, v_source);
  CALL data_source_id('target ', p_target, v_target);
  IF v_source <> v_target THEN
    CALL check_no_ring(v_source, v_target);
  END IF;
  INSERT INTO channel (name, mode) VALUES (p_name, 'one_way');
  INSERT INTO pipeline (channel_id, name, source_id, target_id)
  VALUES (LAST_INSERT_ID(), p_name, v_source, v_target);
  INSERT INTO pipeline_lease (pipeline_id) VALUES (LAST_INSERT_ID());
END
