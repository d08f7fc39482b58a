-- How many pipelines p_ref names: a pipeline name, or a channel name (all its pipelines).
-- Fails naming p_ref when it names none.
CREATE PROCEDURE pipeline_count(IN p_ref VARCHAR(1024), OUT p_count INT)
  SQL SECURITY INVOKER
BEGIN
  SELECT COUNT(*) INTO p_count FROM pipeline p JOIN channel c ON c.id = p.channel_id
   WHERE p.name = p_ref OR c.name = p_ref;
  IF p_count = 0 THEN
    CALL raise_error(CONCAT('unknown pipeline or channel ''', LEFT(COALESCE(p_ref, 'NULL'), 64), ''''));
  END IF;
END
