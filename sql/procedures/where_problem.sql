-- Sets p_problem to why p_where cannot be a copy's row condition (NULL when this database's
-- parser takes it as one expression; column names are resolved later, on the source). Kept
-- apart from its caller because its error handler would otherwise swallow the caller's errors.
-- The statement is only prepared, never run. The node parses the condition again with
-- sqlparser and sends the source only the expression it re-renders.
CREATE PROCEDURE where_problem(IN p_where TEXT, OUT p_problem VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_code INT DEFAULT 0;
  DECLARE v_text VARCHAR(512) DEFAULT '';
  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION
    GET DIAGNOSTICS CONDITION 1 v_code = MYSQL_ERRNO, v_text = MESSAGE_TEXT;
  SET p_problem = NULL;
  SET @ottr_where_probe = CONCAT('SELECT 1 FROM DUAL WHERE (', p_where, '\n)');
  PREPARE ottr_where_probe FROM @ottr_where_probe;
  IF v_code = 0 THEN
    DEALLOCATE PREPARE ottr_where_probe;
  ELSEIF v_code = 1064 THEN
    -- a syntax error (a second statement, an unbalanced parenthesis, ...)
    SET p_problem = v_text;
  END IF;
  -- other errors (an unknown column, as it is resolved against DUAL here) mean it parsed
  SET @ottr_where_probe = NULL;
END
