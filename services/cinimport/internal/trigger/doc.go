// Package trigger decides when cinimport imports: ImportTrigger turns row changes, sweep ticks and
// trade syncs into session imports and reports each import as MovesImported events.
//
//   - A session that opens (a cin_aux.rt_session row inserted or updated with status OPEN) is
//     imported at once.
//   - market.account_trades inserts are coalesced per account scope: the first insert of a burst
//     opens a batch, every insert arriving within the debounce joins it, and one import of the
//     scope's OPEN sessions serves the whole batch (it finds every trade stored since the last
//     import, whatever its trade time). Each event is acknowledged only after the
//     import that covers it has committed, so a crash loses nothing: the events are redelivered.
//   - The periodic sweep tick (cp.tick.cinimport) imports every OPEN session, as the safety net:
//     it finds the trades whose insert events were lost (dead-lettered, never relayed) and those
//     of markets that have become known, in time proportional to what is new.
//
// Imports are idempotent, so redelivered and replayed events add no moves.
package trigger
