-- drain_node / undrain_node: an operator's flag on a node. A drained node hands its pipelines
-- (and the monitor) over and claims nothing until undrained; the flag outlives restarts.

ALTER TABLE node
  ADD COLUMN drain TINYINT(1) NOT NULL DEFAULT 0
    COMMENT 'set by drain_node: hold no pipelines until undrain_node';
