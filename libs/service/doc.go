// Package service is the process frame every CryptoPill daemon runs in: JSON logging with slog,
// OpenTelemetry tracing, Postgres (migrated at start when asked) and NATS connections, the
// ops.session_log stamp, an HTTP server for /healthz, /readyz and /metrics, and a clean shutdown on
// SIGINT/SIGTERM: the service's run function sees its context cancelled, drains its consumers and
// finishes in-flight work within SHUTDOWN_GRACE, then connections close.
package service
