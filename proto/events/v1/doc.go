// Package eventsv1 holds the Go types of the CryptoPill event schemas, generated from
// proto/cryptopill/events/v1/*.proto by `make proto` (proto/internal/gen). Do not edit the
// .pb.go files; change the .proto files and regenerate.
//
// Every top-level message except the helper types (OrchestratorSession, Value, HeaderValues)
// is an event published on the bus by cryptopill.dev/jobs/libs/events; docs/events.md lists
// their subjects, streams and consumers.
package eventsv1
