// Package ticks is the orchestrator's TickPublisher: one tick per module and period on
// cp.tick.<module>, aligned to the wall clock, with an id derived from (module, period start) so
// that several orchestrators put exactly one tick per period into CP_TICKS. It also holds the
// runtime freeze switch (FreezeFlags), a JetStream KV bucket operators write to stop ticks without
// a restart.
package ticks
