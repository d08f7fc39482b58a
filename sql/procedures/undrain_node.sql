-- Lets a drained node claim pipelines again (it takes free ones at once, and others only as
-- the balance rule allows: it never takes a pipeline from a healthy holder).
CREATE PROCEDURE undrain_node(IN p_node VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  CALL check_name('node', p_node);
  IF NOT EXISTS (SELECT 1 FROM node WHERE name = p_node) THEN
    CALL raise_error(CONCAT('no node named ''', p_node, ''' has registered (see v_node_status)'));
  END IF;
  UPDATE node SET drain = 0 WHERE name = p_node;
END
