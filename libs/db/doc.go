// Package db opens Postgres pools and owns the schema: the ordered migrations embedded in every
// binary (migrations/*.sql, applied with goose's Provider API) and the process session stamp in
// ops.session_log.
package db
