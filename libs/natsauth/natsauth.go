// Package natsauth derives each identity's NATS permissions from the declared topology (streams,
// durables, buckets and their owners in libs/events) and the subjects the services use beside it
// (the NATS services API, operator endpoints, the flags bucket), renders them as the nats-server
// configuration shipped in deploy/nats/permissions.conf, and generates nkey identities for the
// dev stack, the tests and compose.
//
// One identity per service plus the operator's; each may do only what its service does:
// publish the subjects of the streams it owns (dead letters only for its own durables), create
// and update only what it owns, look up and read what it uses, consume its own durables,
// and answer requests made to it.
package natsauth

import (
	"fmt"
	"slices"
	"strings"

	"cryptopill.dev/jobs/libs/events"
)

// Operator is the operator's identity: cpctl and the nats CLI.
const Operator = "operator"

// FlagsBucket is the orchestrator's KV bucket of operator flags (freeze); FLAGS_BUCKET's default.
// A deployment that renames the bucket must regenerate the permissions for it.
const FlagsBucket = "CP_FLAGS"

// Identities are every NATS identity, the services in topology order and then the operator.
func Identities() []string {
	return []string{events.ServiceOrchestrator, events.ServiceStraux, events.ServiceCinimport, events.ServiceSeeder, Operator}
}

// Permissions is one identity's NATS permissions: the subjects it may publish to (JetStream API
// requests included) and subscribe to, and whether it may answer requests made to it.
type Permissions struct {
	Publish []string
	// PublishDeny carves out of Publish what a wildcard there would also allow.
	PublishDeny []string
	Subscribe   []string
	// SubscribeDeny carves out of Subscribe likewise.
	SubscribeDeny  []string
	AllowResponses bool
}

// orderedReader is an ordered (ephemeral) consumer a service reads a stream with, beside its
// durables: straux follows its own ticks to assist the replica working them.
type orderedReader struct {
	service, stream, filter string
}

func orderedReaders() []orderedReader {
	return []orderedReader{
		{events.ServiceStraux, events.StreamTicks, events.TickSubject(events.ModuleStraux)},
	}
}

// InboxPrefix is the reply-subject prefix an identity's connections use (nats.CustomInboxPrefix),
// so that it may subscribe to its own replies and not to another identity's.
func InboxPrefix(identity string) string { return "_INBOX_" + identity }

// ServicePermissions are what service may do on NATS with topo as declared.
func ServicePermissions(topo events.Topology, service string) Permissions {
	var pub, deny, sub []string
	api := func(format string, args ...any) { pub = append(pub, "$JS.API."+fmt.Sprintf(format, args...)) }
	read := func(stream string) {
		// Stream INFO binds; MSG.GET and DIRECT.GET read one message (the last tick, universe).
		api("STREAM.INFO.%s", stream)
		api("STREAM.MSG.GET.%s", stream)
		api("DIRECT.GET.%s", stream)
		api("DIRECT.GET.%s.>", stream)
	}
	own := func(stream string) {
		read(stream)
		api("STREAM.CREATE.%s", stream)
		api("STREAM.UPDATE.%s", stream)
	}
	// Account limits and usage: stream creation (file or memory, max bytes) asks for them.
	api("INFO")
	for _, s := range topo.Streams {
		switch {
		case s.Owner == service:
			own(s.Name)
			if s.Name != events.StreamDLQ { // dead letters: each durable's own subject, below
				pub = append(pub, s.Subjects...)
			}
		case slices.Contains(s.Users, service):
			read(s.Name)
			if s.UsersCreate {
				api("STREAM.CREATE.%s", s.Name)
			}
		}
	}
	for _, c := range topo.Consumers {
		if c.Owner != service {
			continue
		}
		d := c.Config.Durable
		api("CONSUMER.INFO.%s.%s", c.Stream, d)
		// CREATE.<stream>.<durable> (several filters), .<filter> (one), DURABLE.CREATE (older
		// servers); a filter's wildcard tokens make the last one a wildcard.
		api("CONSUMER.CREATE.%s.%s", c.Stream, d)
		api("CONSUMER.CREATE.%s.%s.>", c.Stream, d)
		api("CONSUMER.DURABLE.CREATE.%s.%s", c.Stream, d)
		api("CONSUMER.MSG.NEXT.%s.%s", c.Stream, d)
		pub = append(pub, "$JS.ACK."+c.Stream+"."+d+".>", events.DeadLetterSubject(d))
	}
	for _, r := range orderedReaders() {
		if r.service != service {
			continue
		}
		// Ephemeral names are generated: any name, with the reader's filter only.
		api("CONSUMER.CREATE.%s.*.%s", r.stream, r.filter)
		api("CONSUMER.MSG.NEXT.%s.*", r.stream)
		api("CONSUMER.DELETE.%s.*", r.stream)
		api("CONSUMER.INFO.%s.*", r.stream)
		// Those wildcards would also reach the stream's durables: not another service's.
		for _, c := range topo.Consumers {
			if c.Stream == r.stream && c.Owner != service {
				d := c.Config.Durable
				for _, verb := range []string{"CREATE", "MSG.NEXT", "DELETE", "INFO"} {
					deny = append(deny, fmt.Sprintf("$JS.API.CONSUMER.%s.%s.%s", verb, c.Stream, d))
				}
				deny = append(deny, fmt.Sprintf("$JS.API.CONSUMER.CREATE.%s.%s.>", c.Stream, d))
			}
		}
	}
	for _, b := range topo.Buckets {
		owner := b.Owner == service
		if !owner && !slices.Contains(b.Users, service) {
			continue
		}
		st := b.StreamName()
		if owner {
			own(st)
		} else {
			read(st)
		}
		// Put, get (an ordered consumer over the chunks) and delete (a purge of its chunks).
		pub = append(pub, "$O."+b.Bucket+".>", "$JS.FC."+st+".>")
		api("CONSUMER.CREATE.%s.>", st)
		api("CONSUMER.DELETE.%s.>", st)
		api("STREAM.PURGE.%s", st)
		sub = append(sub, "$O."+b.Bucket+".>")
	}
	if service == events.ServiceOrchestrator {
		// The flags bucket it owns (freeze): create, read, watch.
		st := "KV_" + FlagsBucket
		own(st)
		pub = append(pub, "$KV."+FlagsBucket+".>", "$JS.FC."+st+".>")
		api("CONSUMER.CREATE.%s.>", st)
		api("CONSUMER.DELETE.%s.>", st)
	}
	// The NATS services API (nats.go micro): PING, INFO, STATS for all, by name, by id; and the
	// service's operator endpoints. Answers go out through allow_responses.
	for _, verb := range []string{"PING", "INFO", "STATS"} {
		sub = append(sub, "$SRV."+verb, "$SRV."+verb+"."+service, "$SRV."+verb+"."+service+".*")
	}
	sub = append(sub, "cp.ops."+service+".>", InboxPrefix(service)+".>")
	return Permissions{Publish: dedup(pub), PublishDeny: dedup(deny), Subscribe: dedup(sub), AllowResponses: true}
}

// OperatorPermissions are the operator's: every JetStream API request (stream and consumer
// admin, reading any stream and the dead letters), the KV and object stores, the services API
// and every service's operator endpoints, and the platform's event subjects: the operator is the
// administrator (it may already purge or delete any stream), and injecting an event by hand
// (`nats pub`, a test message a consumer should dead-letter) is part of its runbook. Services
// publish only their own subjects.
func OperatorPermissions() Permissions {
	return Permissions{
		Publish: []string{"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>", "$O.>", "$SRV.>", "cp.>"},
		// The nats CLI and cpctl use the default inbox; $O.> is read by object gets; cp.> lets
		// `nats sub 'cp.dlq.>'` watch events (read only), but not serve a service's endpoints.
		Subscribe:      []string{"_INBOX.>", "$O.>", "cp.>"},
		SubscribeDeny:  []string{"cp.ops.>"},
		AllowResponses: true,
	}
}

// PermissionsFor is identity's permissions: OperatorPermissions or ServicePermissions.
func PermissionsFor(topo events.Topology, identity string) Permissions {
	if identity == Operator {
		return OperatorPermissions()
	}
	return ServicePermissions(topo, identity)
}

func dedup(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// VarName is the configuration variable holding identity's permissions: STRAUX_PERMISSIONS.
func VarName(identity string) string { return strings.ToUpper(identity) + "_PERMISSIONS" }

// RenderPermissions is deploy/nats/permissions.conf for topo: one variable per identity, which
// the users file (RenderUsers) gives to each user.
func RenderPermissions(topo events.Topology) string {
	var b strings.Builder
	b.WriteString("# CryptoPill NATS permissions, one variable per identity. Generated from the declared topology\n" +
		"# (libs/events) by libs/natsauth: regenerate with `make natsperm`, never edit by hand.\n" +
		"# A users file (users.conf) includes this file and gives each user its variable.\n")
	for _, id := range Identities() {
		p := PermissionsFor(topo, id)
		fmt.Fprintf(&b, "\n%s = {\n", VarName(id))
		writeList(&b, "publish", p.Publish, p.PublishDeny)
		writeList(&b, "subscribe", p.Subscribe, p.SubscribeDeny)
		if p.AllowResponses {
			b.WriteString("  allow_responses = true\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func writeList(b *strings.Builder, name string, allow, deny []string) {
	fmt.Fprintf(b, "  %s = {\n", name)
	for _, l := range []struct {
		key      string
		subjects []string
	}{{"allow", allow}, {"deny", deny}} {
		if len(l.subjects) == 0 {
			continue
		}
		fmt.Fprintf(b, "    %s = [\n", l.key)
		for _, s := range l.subjects {
			// Quoted: an unquoted $JS… would be read as a variable.
			fmt.Fprintf(b, "      %q\n", s)
		}
		b.WriteString("    ]\n")
	}
	b.WriteString("  }\n")
}

// RenderUsers is a users file giving each identity, by its nkey public key, its permissions:
// it includes permissionsFile (a path relative to the users file's directory, as nats-server
// resolves includes).
func RenderUsers(permissionsFile string, publicKeys map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# CryptoPill NATS users: one nkey per identity (public keys only; the seeds stay with each\n"+
		"# service). Written by `cpctl nats-keys`.\ninclude %q\n\nauthorization {\n  users = [\n", permissionsFile)
	for _, id := range Identities() {
		if k, ok := publicKeys[id]; ok {
			fmt.Fprintf(&b, "    { nkey: %q, permissions: $%s }  # %s\n", k, VarName(id), id)
		}
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}
