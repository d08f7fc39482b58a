-- Creates a two-way channel between data sources p_a and p_b (both writable) with its two
-- pipelines, '<name>.<a>.to.<b>' and '<name>.<b>.to.<a>' (the reverse one applies the table
-- pairs inverted). p_a is the primary: its version wins conflicts until set_conflict_policy
-- says otherwise. The channel starts stopped.
CREATE PROCEDURE create_two_way_channel(IN p_name VARCHAR(1024), IN p_a VARCHAR(1024),
                                        IN p_b VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_a INT UNSIGNED DEFAULT NULL;
  DECLARE v_b INT UNSIGNED DEFAULT NULL;
  DECLARE v_channel INT UNSIGNED;
  DECLARE v_forward VARCHAR(1024) DEFAULT CONCAT(p_name, '.', p_a, '.to.', p_b);
  DECLARE v_reverse VARCHAR(1024) DEFAULT CONCAT(p_name, '.', p_b, '.to.', p_a);
  CALL check_name('channel', p_name);
  IF EXISTS (SELECT 1 FROM channel WHERE name = p_name) THEN
    CALL raise_error(CONCAT('channel ''', p_name, ''' already exists'));
  END IF;
  CALL data_source_id('', p_a, v_a);
  CALL data_source_id('', p_b, v_b);
  IF v_a = v_b OR EXISTS (SELECT 1 FROM data_source a JOIN data_source b
                           ON a.host = b.host AND a.port = b.port WHERE a.id = v_a AND b.id = v_b) THEN
    CALL raise_error(CONCAT('a two-way channel needs two servers: ''', LEFT(p_a, 40), ''' and ''',
      LEFT(p_b, 40), ''' are the same'));
  END IF;
  IF CHAR_LENGTH(v_forward) > 130 OR CHAR_LENGTH(v_reverse) > 130 THEN
    CALL raise_error('channel and data source names too long for the pipeline names (130 characters)');
  END IF;
  IF EXISTS (SELECT 1 FROM pipeline WHERE name IN (v_forward, v_reverse)) THEN
    CALL raise_error(CONCAT('a pipeline named ''', LEFT(v_forward, 100), ''' or its reverse already exists'));
  END IF;
  CALL check_no_ring(v_a, v_b);
  CALL check_no_ring(v_b, v_a);
  INSERT INTO channel (name, mode, primary_source_id) VALUES (p_name, 'two_way', v_a);
  SET v_channel = LAST_INSERT_ID();
  INSERT INTO pipeline (channel_id, name, source_id, target_id, reverse)
  VALUES (v_channel, v_forward, v_a, v_b, 0);
  INSERT INTO pipeline_lease (pipeline_id) VALUES (LAST_INSERT_ID());
  INSERT INTO pipeline (channel_id, name, source_id, target_id, reverse)
  VALUES (v_channel, v_reverse, v_b, v_a, 1);
  INSERT INTO pipeline_lease (pipeline_id) VALUES (LAST_INSERT_ID());
END
