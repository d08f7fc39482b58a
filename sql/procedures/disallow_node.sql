-- Removes a node from the nodes allowed to run a pipeline (or every pipeline of a channel).
CREATE PROCEDURE disallow_node(IN p_ref VARCHAR(1024), IN p_node VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_count INT;
  CALL pipeline_count(p_ref, v_count);
  DELETE n FROM pipeline_node n JOIN pipeline p ON p.id = n.pipeline_id JOIN channel c ON c.id = p.channel_id
   WHERE (p.name = p_ref OR c.name = p_ref) AND n.node = p_node;
  IF ROW_COUNT() = 0 THEN
    CALL raise_error(CONCAT('node ''', LEFT(COALESCE(p_node, 'NULL'), 64), ''' was not allowed for ''', LEFT(p_ref, 40), ''''));
  END IF;
END
