-- Pauses kinds $1 on behalf of source $2 ('operator' or a freeze flag key) with reason $3.
-- Returns the kinds this call paused (a kind already paused by the same source is left as it is).
INSERT INTO ops.job_pause (kind, source, reason)
SELECT k, $2, $3 FROM unnest($1::text[]) AS k
    ON CONFLICT (kind, source) DO NOTHING
RETURNING kind
