-- Fails unless p_policy is a conflict policy and p_column suits it: newer_wins needs the
-- column it compares.
CREATE PROCEDURE check_conflict_policy(IN p_policy VARCHAR(1024), IN p_column VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  IF p_policy IS NULL OR p_policy NOT IN ('primary_wins', 'newer_wins') THEN
    CALL raise_error(CONCAT('unknown conflict policy ''', LEFT(COALESCE(p_policy, 'NULL'), 40),
      ''': use primary_wins or newer_wins'));
  END IF;
  IF p_policy = 'newer_wins' AND (p_column IS NULL OR p_column = '' OR CHAR_LENGTH(p_column) > 64) THEN
    CALL raise_error('newer_wins needs the timestamp or version column it compares (1 to 64 characters)');
  END IF;
END
