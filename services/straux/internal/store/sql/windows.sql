-- The enabled windows, shortest first, with their length in seconds ('1M' counts 30 days).
SELECT label, extract(epoch FROM duration)::float8 FROM settings.windows WHERE enabled ORDER BY duration, label
