-- Moves a node's pipelines away before maintenance: the node stops them, releases their
-- leases (other nodes take them over at their next poll, from the saved positions), hands
-- the monitor over, and claims nothing until undrain_node. The flag outlives the node's
-- restarts. v_node_status.state says 'draining' until the node holds nothing, then 'drained'.
-- Returns the pipelines that only this node may run (they stop until undrain_node); none: an
-- empty result.
CREATE PROCEDURE drain_node(IN p_node VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  CALL check_node_registered(p_node);
  UPDATE node SET drain = 1 WHERE name = p_node;
  -- Pipelines no other working node may run (allow_node) stop until undrain_node: say so.
  SELECT p.name AS pipeline,
         CONCAT('no node but ', p_node, ' may run it (allow_node): it stops until undrain_node') AS warning
    FROM pipeline p
   WHERE EXISTS (SELECT 1 FROM pipeline_node a WHERE a.pipeline_id = p.id AND a.node = p_node)
     AND NOT EXISTS (SELECT 1 FROM pipeline_node a JOIN node o ON o.name = a.node
                      WHERE a.pipeline_id = p.id AND a.node <> p_node AND o.drain = 0)
   ORDER BY p.name;
END
