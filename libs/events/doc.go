// Package events is the CryptoPill event bus: the envelope every event travels in, the
// JetStream streams and durable consumers declared as code, an asynchronous publisher, and a
// consume loop with bounded redelivery and a dead-letter stream.
//
// # Envelope
//
// An event is a protobuf message from cryptopill.dev/jobs/proto/events/v1. On the wire its
// payload is the message's canonical JSON (protojson, compacted), and its attributes are NATS
// headers: the CloudEvents attributes ce-specversion, ce-id, ce-type, ce-source and ce-time,
// content-type application/json, Nats-Msg-Id equal to ce-id (so JetStream drops a second
// publish of the same fact inside the stream's duplicate window), and the W3C traceparent and
// tracestate of the publishing span. [Encode] and [Decode] convert between [Event] and
// *nats.Msg; the ce-type is derived from the message's full name ([TypeOf]).
//
// Ids are deterministic where the same fact can be published twice: [TickID], [ChangeID],
// [UniverseID], [JobEventID], [MovesImportedID], [DeadLetterID]; [NewID] for the rest.
//
// # Streams and consumers
//
// [NewTopology] returns the streams (CP_TICKS, CP_UNIVERSE, CP_CDC, CP_JOBS, CP_IMPORTS,
// CP_DLQ) and the services' durable consumers; [Topology.Apply] creates or updates them,
// idempotently, at start. Subject builders ([TickSubject], [ChangeSubject], ...) and the
// stream and consumer names are exported so services never spell subjects by hand.
// docs/events.md describes every subject.
//
// # Publishing
//
// [Publisher] publishes synchronously ([Publisher.Publish]) or asynchronously
// ([Publisher.PublishAsync]) with a bounded number of publishes awaiting their PubAck. Every
// asynchronous publish resolves exactly once, to a PubAck or an error, through its [Future]
// and the optional [PublisherConfig.OnResult]; [Publisher.Flush] waits for all of them.
//
// # Large events
//
// [ClaimCheck] stores a payload too large for a NATS message in the CP_CLAIMS Object Store
// bucket and publishes a reference in its place (headers Cp-Claim, Cp-Claim-Size,
// Cp-Claim-Digest); [PublisherConfig.ClaimCheck] does it transparently, and [Consumer] resolves
// references before decoding, so handlers always see the whole payload.
//
// # Consuming
//
// [Consumer] runs a [Handler] for every message of one durable pull consumer with explicit
// acks, InProgress heartbeats while the handler runs, delayed redelivery on failure, and a
// dead letter on CP_DLQ (subject cp.dlq.<consumer>) for a message that cannot be decoded,
// that the handler rejects with [Permanent], or that fails on its last allowed delivery; the
// original is terminated only once the dead letter is written (a failed write is retried, the
// message heartbeated, until it succeeds or the consumer stops). It stops gracefully: it stops pulling, hands back what it had buffered, finishes the handlers
// in flight, then returns. [Middleware] wraps handlers; [Recover], [Timeout] and [Trace] are
// always applied.
package events
