-- Pauses a copy job: the node finishes the chunk it is on and copies nothing more of the job
-- until resume_copy. What was copied stays, and is kept in sync by the stream.
CREATE PROCEDURE pause_copy(IN p_job BIGINT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  CALL copy_job_id(p_job);
  UPDATE copy_job SET requested = 'pause' WHERE id = p_job AND requested = 'run';
  UPDATE copy_table SET state = 'paused' WHERE job_id = p_job AND state IN ('queued', 'copying');
END
