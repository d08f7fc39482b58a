-- Cancels a verification job: the node finishes the chunk it is on and compares nothing more
-- of it. The differences found so far stay in v_verify_diff.
CREATE PROCEDURE cancel_verify(IN p_job BIGINT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  CALL verify_job_id(p_job);
  UPDATE verify_job SET requested = 'cancel' WHERE id = p_job;
  UPDATE verify_table SET state = 'cancelled', finished_at = NOW(6)
   WHERE job_id = p_job AND state IN ('queued', 'verifying', 'failed');
END
