-- Moves a node's pipelines away before maintenance: the node stops them, releases their
-- leases (other nodes take them over at their next poll, from the saved positions), hands
-- the monitor over, and claims nothing until undrain_node. The flag outlives the node's
-- restarts. v_node_status.state says 'draining' until the node holds nothing, then 'drained'.
CREATE PROCEDURE drain_node(IN p_node VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  CALL check_name('node', p_node);
  IF NOT EXISTS (SELECT 1 FROM node WHERE name = p_node) THEN
    CALL raise_error(CONCAT('no node named ''', p_node, ''' has registered (see v_node_status)'));
  END IF;
  UPDATE node SET drain = 1 WHERE name = p_node;
END
