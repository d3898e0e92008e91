// Package ticks is straux's tick runner: it turns each cp.tick.straux tick into one sample per
// planned symbol, and the window statistics and vectors computed from the stored samples.
//
// # Sharing a tick between replicas
//
// The durable consumer delivers a tick to one replica; every replica also watches the ticks
// through its own ordered (ephemeral) consumer and joins in (Assist). Whoever sees a period
// first plans it in Postgres: one str_aux.tick_periods row and one str_aux.tick_claims row per
// symbol, written in one transaction (the primary key serialises planners, so there is one plan
// per period). Replicas then claim chunks of symbols with FOR UPDATE SKIP LOCKED and a lease,
// sample them, and mark them done in the transaction that writes their rows; a claim whose
// lease ran out (its replica died or stalled) is claimed again by anyone still working the
// period. The replica holding the durable message acks it only when every claim of the period
// is done and the period is closed; if it dies, JetStream redelivers the tick after the
// consumer's ack wait and the new holder finishes the period. A lease shorter than the ack wait
// means a dead replica's symbols are taken over within it.
//
// # Weight budget
//
// A plan spends at most a share of the exchange weight budget the tick interval covers (see
// package plan). A universe larger than that is sampled in a rotating slice, and every symbol
// comes up within plan.Rounds ticks; coverage is logged and exported as metrics.
//
// # Late ticks
//
// A tick that arrives after its period has ended (the next tick is due: a backlog after an
// outage) is not sampled: its period is marked skipped, with a sample row carrying the reason
// 'skipped' for every universe symbol, and only the newest period is sampled. A period that was
// planned before it became late is still finished (a redelivery after a replica died).
package ticks
