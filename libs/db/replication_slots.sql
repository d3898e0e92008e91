SELECT slot, active, coalesce(wal_status, ''), retained_bytes, safe_wal_bytes, confirmed_lag_bytes
  FROM ops.replication_slots
 ORDER BY slot
