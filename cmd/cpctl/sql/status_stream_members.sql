-- straux's stream mode: the replicas sharing the exchange's streams (package members), live while
-- their heartbeat's expiry is ahead of the database's clock, and how many streams each holds.
SELECT replica, coalesce(host, ''), streams, expires_at > now() AS live, now() - seen_at AS seen_ago
  FROM str_aux.stream_members
 ORDER BY replica
