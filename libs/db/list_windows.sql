-- The configured windows, shortest first.
SELECT label FROM settings.windows ORDER BY duration, label
