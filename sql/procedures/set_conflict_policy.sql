-- Sets how a two-way channel resolves a row changed on both sides between syncs:
--   'primary_wins', p_primary_or_column = the data source whose version wins (NULL: keep the
--                   current primary, data_source_a unless changed);
--   'newer_wins',   p_primary_or_column = a timestamp or version column of the synced tables;
--                   the greater value wins, a tie goes to the primary.
CREATE PROCEDURE set_conflict_policy(IN p_channel VARCHAR(1024), IN p_policy VARCHAR(1024),
                                     IN p_primary_or_column VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  DECLARE v_primary INT UNSIGNED DEFAULT NULL;
  CALL channel_id(p_channel, v_id);
  IF NOT EXISTS (SELECT 1 FROM channel WHERE id = v_id AND mode = 'two_way') THEN
    CALL raise_error(CONCAT('channel ''', p_channel, ''' is one-way: conflicts arise only in two-way channels'));
  END IF;
  CALL check_conflict_policy(p_policy, p_primary_or_column);
  IF p_policy = 'primary_wins' THEN
    IF p_primary_or_column IS NOT NULL THEN
      SELECT d.id INTO v_primary FROM data_source d JOIN pipeline p ON p.source_id = d.id
       WHERE p.channel_id = v_id AND d.name = p_primary_or_column LIMIT 1;
      IF v_primary IS NULL THEN
        CALL raise_error(CONCAT('''', LEFT(p_primary_or_column, 64), ''' is not a data source of channel ''', p_channel, ''''));
      END IF;
      UPDATE channel SET primary_source_id = v_primary WHERE id = v_id;
    END IF;
    UPDATE channel SET conflict_policy = 'primary_wins', conflict_column = NULL WHERE id = v_id;
  ELSE
    UPDATE channel SET conflict_policy = 'newer_wins', conflict_column = p_primary_or_column WHERE id = v_id;
  END IF;
END
