// Package testkit groups the real-infrastructure helpers tests use: pgtest (a private Postgres
// cluster, a fresh database per test) and natstest (embedded JetStream servers and clusters).
package testkit
