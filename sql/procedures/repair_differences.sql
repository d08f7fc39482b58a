-- Repairs the differences a verification job found (v_verify_diff): the running pipeline
-- re-reads each key's current source row and applies it in stream order (a key the source
-- lacks is deleted from the target), then compares the key again; v_verify_diff.repair says
-- how that went (repaired, or still_different). Keys reported unverified are left alone
-- (verify again). Returns how many keys were queued (column `keys_queued`); on a job still
-- running, keys it finds later are repaired as they are found.
CREATE PROCEDURE repair_differences(IN p_job BIGINT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_channel VARCHAR(64);
  DECLARE v_desired VARCHAR(16);
  CALL verify_job_id(p_job);
  SELECT c.name, c.desired INTO v_channel, v_desired FROM verify_job j
    JOIN pipeline p ON p.id = j.pipeline_id JOIN channel c ON c.id = p.channel_id WHERE j.id = p_job;
  IF v_desired <> 'running' THEN
    CALL raise_error(CONCAT('channel ''', v_channel, ''' is stopped: start_channel(''', v_channel,
      ''') first (repairs go through the stream)'));
  END IF;
  UPDATE verify_job SET repair = TRUE WHERE id = p_job;
  UPDATE verify_diff SET repair = 'pending', repaired_at = NULL
   WHERE job_id = p_job AND kind <> 'unverified' AND (repair IS NULL OR repair = 'still_different');
  SELECT ROW_COUNT() AS keys_queued;
END
