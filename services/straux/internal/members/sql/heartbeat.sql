-- One heartbeat of replica $1: prune rows expired more than $7 µs ago, upsert its own row live
-- for $2 µs (database time), and read the live set with its own name in it. Also returns the
-- host and pid its row had before this heartbeat, and whether that row was live, so two
-- processes heartbeating one replica name are noticed.
--   $1 replica  $2 ttl µs  $3 host  $4 pid  $5 session_id (NULL: none)  $6 streams  $7 prune after µs
WITH prev AS (
    SELECT host, pid, expires_at > now() AS live
      FROM str_aux.stream_members
     WHERE replica = $1
), pruned AS (
    DELETE FROM str_aux.stream_members
     WHERE replica <> $1 AND expires_at < now() - make_interval(secs => $7::bigint / 1e6)
), beat AS (
    INSERT INTO str_aux.stream_members AS m (replica, joined_at, seen_at, expires_at, host, pid, session_id, streams)
    VALUES ($1, now(), now(), now() + make_interval(secs => $2::bigint / 1e6), $3, $4, $5, $6)
    ON CONFLICT (replica) DO UPDATE
       SET joined_at  = CASE WHEN m.expires_at > now() THEN m.joined_at ELSE now() END,
           seen_at    = now(),
           expires_at = EXCLUDED.expires_at,
           host       = EXCLUDED.host,
           pid        = EXCLUDED.pid,
           session_id = EXCLUDED.session_id,
           streams    = EXCLUDED.streams
    RETURNING replica
)
SELECT ARRAY(
           SELECT replica FROM str_aux.stream_members WHERE expires_at > now() AND replica <> $1
            UNION
           SELECT replica FROM beat
            ORDER BY 1)::text[] AS live,
       (SELECT host FROM prev) AS prev_host,
       (SELECT pid FROM prev) AS prev_pid,
       coalesce((SELECT live FROM prev), false) AS prev_live
