-- Fails naming p_job unless it is a copy job.
CREATE PROCEDURE copy_job_id(IN p_job BIGINT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  IF p_job IS NULL OR NOT EXISTS (SELECT 1 FROM copy_job WHERE id = p_job) THEN
    CALL raise_error(CONCAT('unknown copy job ', COALESCE(p_job, 'NULL'), ' (see v_copy)'));
  END IF;
END
