-- Lets a drained node claim pipelines again (it takes free ones at once, and others only as
-- the balance rule allows: it never takes a pipeline from a healthy holder).
CREATE PROCEDURE undrain_node(IN p_node VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  CALL check_node_registered(p_node);
  UPDATE node SET drain = 0 WHERE name = p_node;
END
