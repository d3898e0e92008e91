-- Forget coordination rows older than $1 (claims go with their period).
DELETE FROM str_aux.tick_periods WHERE period_start < $1
