-- Fails naming p_job unless it is a verification job.
CREATE PROCEDURE verify_job_id(IN p_job BIGINT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  IF p_job IS NULL OR NOT EXISTS (SELECT 1 FROM verify_job WHERE id = p_job) THEN
    CALL raise_error(CONCAT('unknown verification job ', COALESCE(p_job, 'NULL'), ' (see v_verify)'));
  END IF;
END
