-- Sets p_ok to whether this database can compile p_pattern as a regular expression. Kept apart
-- from its callers because its error handler would otherwise swallow their own errors.
CREATE PROCEDURE regex_compiles(IN p_pattern VARCHAR(1024), OUT p_ok BOOLEAN)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_probe INT;
  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION SET p_ok = FALSE;
  SET p_ok = TRUE;
  SELECT '' REGEXP p_pattern INTO v_probe;
END
