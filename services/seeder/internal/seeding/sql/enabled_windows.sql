-- The enabled statistics windows, shortest first.
SELECT label FROM settings.windows WHERE enabled ORDER BY duration, label
