-- cpctl smoke: the objects of schemas $1 the code relies on, one row each: tables and views, their
-- columns (type, NOT NULL), indexes (definition), constraints (definition), functions and
-- triggers. Run on the live database and on a scratch one built from the embedded migrations;
-- what the scratch one has and the live one lacks (or has otherwise) is what the code needs.
SELECT 'relation' AS kind, n.nspname || '.' || c.relname AS name, c.relkind::text AS definition
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname = ANY ($1::text[])
UNION ALL
SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND n.nspname = ANY ($1::text[])
UNION ALL
SELECT 'index', schemaname || '.' || indexname, indexdef
  FROM pg_indexes WHERE schemaname = ANY ($1::text[])
UNION ALL
SELECT 'constraint', n.nspname || '.' || c.relname || '.' || co.conname, pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY ($1::text[])
UNION ALL
SELECT 'function', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', ''
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY ($1::text[])
UNION ALL
SELECT 'trigger', n.nspname || '.' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND n.nspname = ANY ($1::text[])
ORDER BY 1, 2
