-- Fails unless p_recipients is a comma-separated list of one or more email addresses.
CREATE PROCEDURE check_recipients(IN p_recipients VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  IF p_recipients IS NULL OR TRIM(p_recipients) = '' THEN
    CALL raise_error('an alarm rule needs recipients: one or more email addresses, comma-separated');
  END IF;
  IF p_recipients NOT REGEXP '^ *[^@ ,<>]+@[^@ ,<>]+ *(, *[^@ ,<>]+@[^@ ,<>]+ *)*$' THEN
    CALL raise_error(CONCAT('invalid recipients ''', LEFT(p_recipients, 60), ''': use name@domain, comma-separated'));
  END IF;
END
