// Package relay is the orchestrator's ChangeRelay: it streams committed row changes of the
// published tables out of Postgres logical replication (pgoutput, protocol v1) and publishes each
// as a RowChange event on cp.cdc.<schema>.<table>.<insert|update|delete>.
//
// Nothing is lost and nothing is stored twice: the replication slot's confirmed flush position
// only ever advances to the end of a transaction whose every event JetStream has acknowledged; a
// session starts by reading each table's last stored event and skips the replayed changes at or
// before it (however long the outage was), and events carry deterministic ids (commit LSN, index
// in the transaction) for JetStream's de-duplication besides. Every publish names the id of the
// one before it (Nats-Expected-Last-Msg-Id), so the server keeps commit order even when a publish
// fails with later ones in flight.
// Publishing is asynchronous with a bounded number and bytes of events in flight, which bounds
// memory for transactions of any size: events are published as they are decoded, and an event
// too large for a NATS message goes through the claim-check (libs/events).
//
// Only one relay streams from a slot at a time; another started on the same slot waits (Postgres
// reports the slot active) and takes over when the first one's connection goes away.
package relay
