-- Signals an operator-facing error. Every procedure fails through here so that messages are
-- cut to the 128 characters MySQL allows in MESSAGE_TEXT.
CREATE PROCEDURE raise_error(IN p_message VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_message VARCHAR(128) DEFAULT LEFT(COALESCE(p_message, 'unknown error'), 128);
  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
END
