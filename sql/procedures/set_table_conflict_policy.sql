-- Overrides the channel's conflict policy for one table pair of a two-way channel (named by
-- its source schema and table as added); p_policy NULL goes back to the channel's policy.
-- The primary is always the channel's.
CREATE PROCEDURE set_table_conflict_policy(IN p_channel VARCHAR(1024), IN p_schema VARCHAR(1024),
                                           IN p_table VARCHAR(1024), IN p_policy VARCHAR(1024),
                                           IN p_column VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_pair INT UNSIGNED;
  CALL table_pair_id(p_channel, p_schema, p_table, v_pair);
  IF NOT EXISTS (SELECT 1 FROM channel WHERE name = p_channel AND mode = 'two_way') THEN
    CALL raise_error(CONCAT('channel ''', p_channel, ''' is one-way: conflicts arise only in two-way channels'));
  END IF;
  IF p_policy IS NOT NULL THEN
    CALL check_conflict_policy(p_policy, p_column);
  END IF;
  UPDATE table_pair
     SET conflict_policy = p_policy,
         conflict_column = IF(p_policy = 'newer_wins', p_column, NULL)
   WHERE id = v_pair;
END
