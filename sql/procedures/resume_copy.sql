-- Resumes a paused copy job where its tables stopped (the last chunk committed on the target).
CREATE PROCEDURE resume_copy(IN p_job BIGINT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  CALL copy_job_id(p_job);
  IF (SELECT requested FROM copy_job WHERE id = p_job) = 'cancel' THEN
    CALL raise_error(CONCAT('copy job ', p_job, ' was cancelled: start a new one with copy_tables'));
  END IF;
  UPDATE copy_job SET requested = 'run' WHERE id = p_job;
  UPDATE copy_table SET state = 'queued' WHERE job_id = p_job AND state = 'paused';
END
