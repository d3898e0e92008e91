// Package relay is the orchestrator's ChangeRelay: it streams committed row changes of the
// published tables out of Postgres logical replication (pgoutput, protocol v1) and publishes each
// as a RowChange event on cp.cdc.<schema>.<table>.<insert|update|delete>.
//
// Delivery is at-least-once with nothing lost: the replication slot's confirmed flush position
// only ever advances to the end of a transaction whose every event JetStream has acknowledged,
// and events carry deterministic ids (commit LSN, index in the transaction), so a replay after a
// crash, a dropped connection or a restart of either server is absorbed by JetStream's
// de-duplication. Publishing is asynchronous with a bounded number of events in flight, which also
// bounds memory for transactions of any size: events are published as they are decoded.
//
// Only one relay streams from a slot at a time; another started on the same slot waits (Postgres
// reports the slot active) and takes over when the first one's connection goes away.
package relay
