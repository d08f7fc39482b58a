-- Restarts a running pipeline (or every pipeline of a channel): the node that runs it stops it
-- and starts it again at once, from its saved position. Auto-recovery does the same.
CREATE PROCEDURE restart_pipeline(IN p_ref VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_count INT;
  CALL pipeline_count(p_ref, v_count);
  UPDATE pipeline p JOIN channel c ON c.id = p.channel_id SET p.restart_seq = p.restart_seq + 1
   WHERE p.name = p_ref OR c.name = p_ref;
END
