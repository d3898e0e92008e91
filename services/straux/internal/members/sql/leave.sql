-- A graceful stop: replica $1 leaves the live set at once instead of at its expiry, so the others
-- take its streams over at their next heartbeat. Only the row this process wrote ($2 host, $3 pid):
-- a replica name another process has taken over is left to it.
DELETE FROM str_aux.stream_members WHERE replica = $1 AND host = $2 AND pid = $3
