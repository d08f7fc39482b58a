-- Fails unless p_node is a valid node name that has registered (a row in node).
CREATE PROCEDURE check_node_registered(IN p_node VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  CALL check_name('node', p_node);
  IF NOT EXISTS (SELECT 1 FROM node WHERE name = p_node) THEN
    CALL raise_error(CONCAT('no node named ''', p_node, ''' has registered (see v_node_status)'));
  END IF;
END
