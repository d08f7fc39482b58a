-- Cancels a copy job: the node finishes the chunk it is on and copies nothing more of it.
-- Rows already copied stay on the target (and are kept in sync by the stream). Its failed
-- tables are marked cancelled too, which ends their copy_failed alert.
CREATE PROCEDURE cancel_copy(IN p_job BIGINT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  CALL copy_job_id(p_job);
  UPDATE copy_job SET requested = 'cancel' WHERE id = p_job;
  UPDATE copy_table SET state = 'cancelled', finished_at = NOW(6)
   WHERE job_id = p_job AND state IN ('queued', 'copying', 'paused', 'failed');
END
