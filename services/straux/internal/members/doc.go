// Package members shares the universe's websocket streams among straux replicas: each symbol's
// stream (its local order book) is held by exactly one live replica, handed over within seconds
// when replicas come and go, crashes included, and moved as little as possible, since a moved
// symbol costs a REST snapshot to rebuild its book.
//
// # Membership
//
// Every replica runs a Members, whose Run heartbeats its row of str_aux.stream_members every
// Config.Every: one statement upserts the row with expires_at = now() + TTL and reads the live
// set, the rows with expires_at > now(). Liveness is judged by the database's clock alone, in
// the statement that reads it, so replicas on hosts whose clocks disagree still agree on who is
// alive, as the tick claims' leases do (package ticks). A graceful stop (Run's context cancelled)
// deletes the row at once; a crashed replica's row expires after TTL; rows expired long ago
// (Config.PruneAfter) are deleted by the live members' heartbeats.
//
// A replica whose heartbeats fail (the database unreachable) keeps its last view until TTL after
// the last successful heartbeat was sent, then is no member and owns nothing: its row expires no
// earlier than that in real time (the database stamped it after the request left), so it lets
// its streams go before the others can take them. Failures are logged and counted
// (cp_straux_stream_members_errors_total) and retried every Every.
//
// # Ownership
//
// Owner is rendezvous (highest-random-weight) hashing: each member scores a symbol with a hash
// of (member, symbol) and the highest score holds it. It needs nothing but the live set, every
// replica with the same set computes the same owners, and a change of the set moves only what it
// must: a joining member takes about 1/n of the symbols, all from the others, and a leaving
// member's symbols spread over the rest while every other symbol stays put. Owned is this
// replica's share under its current view; Changes is signalled when the view changes, and the
// caller re-reads Owned and re-subscribes.
//
// # Handover
//
// Views are read every Every, so replicas see a change up to Every apart. A joining member holds
// its share from its first heartbeat while the previous owners drop it at their next one: an
// overlap of at most Every, during which two replicas hold a stream (harmless: each keeps a
// book). A gracefully stopping member drops its share at once and the others pick it up at their
// next heartbeat: a gap of at most Every. A crashed member's share is picked up within TTL +
// Every. The heartbeat row also carries the host, pid, session and stream count (SetStreams) for
// cpctl status.
package members
