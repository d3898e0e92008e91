-- cpctl smoke: the schemas the migrations create (run on the scratch database).
SELECT nspname FROM pg_namespace
 WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'public')
 ORDER BY nspname
