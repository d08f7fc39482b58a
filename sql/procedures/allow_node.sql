-- Restricts a pipeline (or every pipeline of a channel) to the nodes allowed by name, for
-- example the nodes of one datacenter. A pipeline with no allowed nodes runs on any node.
CREATE PROCEDURE allow_node(IN p_ref VARCHAR(1024), IN p_node VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_count INT;
  CALL pipeline_count(p_ref, v_count);
  CALL check_name('node', p_node);
  INSERT IGNORE INTO pipeline_node (pipeline_id, node)
  SELECT p.id, p_node FROM pipeline p JOIN channel c ON c.id = p.channel_id WHERE p.name = p_ref OR c.name = p_ref;
END
