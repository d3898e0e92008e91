package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/progress"
	"cryptopill.dev/jobs/libs/redeliver"
)

// `cpctl dlq` lists, shows, re-drives and purges dead letters (CP_DLQ). A re-drive hands the
// original message to the service that runs the dead-lettering consumer (its
// cp.ops.<service>.deliver endpoint), never republishes it: a republish would be dropped by the
// stream's duplicate window and reach every other reader of the subject.

const dlqUsage = `usage: cpctl dlq <action> [flags]

  list    [-consumer C] [-subject S] [-since T] [-limit N]   dead letters per consumer, then the entries
  show    SEQ                                                 one entry: reason, original subject, headers, payload
  redrive SEQ... | -consumer C [-subject S] [-since T] | -all
                                                              hand entries back to their consumer's service;
                                                              an entry is removed once handled, or once its new
                                                              dead letter is written (it failed again)
  purge   SEQ... | -consumer C  -yes                         remove entries without handling them

T is a duration back from now (2h) or an RFC 3339 time. Exit status: 0 done (list: no dead
letters), 1 something failed (list: there are dead letters), 2 usage or connection error.

`

func runDLQ(ctx context.Context, args []string) int {
	return dlqCommand(ctx, args, processEnv(), time.Now)
}

func dlqCommand(ctx context.Context, args []string, env cmdEnv, now func() time.Time) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.stderr, dlqUsage)
		if len(args) == 0 {
			return dlqExitUsageErr
		}
		return dlqExitOK
	}
	action := args[0]
	fs := flag.NewFlagSet("dlq "+action, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, dlqUsage); fs.PrintDefaults() }
	var nf natsFlags
	nf.register(fs, 2*time.Minute)
	consumer := fs.String("consumer", "", "only this consumer's (durable's) dead letters")
	subject := fs.String("subject", "", "only dead letters whose original subject matches this NATS filter")
	since := fs.String("since", "", "only dead letters stored since then")
	limit := fs.Int("limit", 20, "list: entries shown after the summary (0: all)")
	all := fs.Bool("all", false, "redrive: every dead letter")
	yes := fs.Bool("yes", false, "purge: really remove")
	batch := fs.Int("batch", 20, "redrive: entries per request to a service")
	pos, err := parseActionArgs(fs, args[1:])
	if err != nil {
		return flagStatus(err)
	}
	var seqs []uint64
	for _, p := range pos {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || n == 0 {
			return connStatus(env, "dlq "+action, usageErrorf("%q is not a CP_DLQ sequence (a positive integer, as `cpctl dlq list` shows)", p))
		}
		seqs = append(seqs, n)
	}
	sinceT, err := parseTime("since", *since, now())
	if err != nil {
		return connStatus(env, "dlq "+action, err)
	}
	filter := redeliver.Filter{Consumer: *consumer, Subject: *subject, Since: sinceT}
	filtered := *consumer != "" || *subject != "" || *since != ""

	switch action {
	case "list":
		if len(seqs) > 0 {
			return connStatus(env, "dlq list", usageErrorf("list takes no sequence; use show SEQ"))
		}
	case "show":
		if len(seqs) != 1 || filtered || *all {
			return connStatus(env, "dlq show", usageErrorf("show takes exactly one sequence"))
		}
	case "redrive":
		if n := btoi(len(seqs) > 0) + btoi(*consumer != "") + btoi(*all); n != 1 {
			return connStatus(env, "dlq redrive", usageErrorf("redrive takes one of: sequences, -consumer C, -all"))
		}
		if len(seqs) > 0 && filtered {
			return connStatus(env, "dlq redrive", usageErrorf("redrive SEQ takes no filter"))
		}
	case "purge":
		if n := btoi(len(seqs) > 0) + btoi(*consumer != ""); n != 1 || *subject != "" || *since != "" {
			return connStatus(env, "dlq purge", usageErrorf("purge takes sequences or -consumer C"))
		}
	default:
		fmt.Fprint(env.stderr, dlqUsage)
		return connStatus(env, "dlq", usageErrorf("unknown action %q", action))
	}

	nc, cl, err := nf.connect(env, *batch)
	if err != nil {
		return connStatus(env, "dlq "+action, err)
	}
	defer nc.Close()
	name := "dlq " + action
	switch action {
	case "list":
		return dlqList(ctx, env, cl, nf.json, filter, *limit)
	case "show":
		return dlqShow(ctx, env, cl, nf.json, seqs[0])
	case "redrive":
		var dls []redeliver.DeadLetter
		if len(seqs) > 0 {
			for _, s := range seqs {
				dl, err := cl.DeadLetter(ctx, s)
				if err != nil {
					return connStatus(env, name, err)
				}
				dls = append(dls, dl)
			}
		} else if dls, err = cl.DeadLetters(ctx, filter); err != nil {
			return connStatus(env, name, err)
		}
		return dlqRedrive(ctx, env, cl, nf.json, dls)
	default:
		return dlqPurge(ctx, env, cl, nf.json, seqs, *consumer, *yes)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dlqListReport is `dlq list --json`.
type dlqListReport struct {
	Total     int                         `json:"total"`
	Consumers []redeliver.ConsumerSummary `json:"consumers"`
	Entries   []redeliver.DeadLetter      `json:"entries"`
}

func dlqList(ctx context.Context, env cmdEnv, cl *redeliver.Client, asJSON bool, f redeliver.Filter, limit int) int {
	dls, err := cl.DeadLetters(ctx, f)
	if err != nil {
		return connStatus(env, "dlq list", err)
	}
	rep := dlqListReport{Total: len(dls), Consumers: cl.Summarize(dls), Entries: dls}
	if rep.Entries == nil {
		rep.Entries = []redeliver.DeadLetter{}
	}
	if asJSON {
		err = printJSON(env.stdout, rep)
	} else {
		err = printDLQList(env.stdout, rep, limit)
	}
	if err != nil {
		return connStatus(env, "dlq list", err)
	}
	if len(dls) > 0 {
		return dlqExitFailed
	}
	return dlqExitOK
}

func printDLQList(w io.Writer, rep dlqListReport, limit int) error {
	if rep.Total == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "CONSUMER\tSERVICE\tCOUNT\tOLDEST\tNEWEST\tREASONS")
	for _, s := range rep.Consumers {
		var rs []string
		for _, r := range slices.Sorted(maps.Keys(s.Reasons)) {
			rs = append(rs, fmt.Sprintf("%s=%d", strings.TrimPrefix(r, "REASON_"), s.Reasons[r]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Consumer, s.Service, s.Count, s.Oldest.UTC().Format(time.RFC3339),
			s.Newest.UTC().Format(time.RFC3339), strings.Join(rs, " "))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SEQ\tCONSUMER\tREASON\tORIGINAL SUBJECT\tSTREAM SEQ\tSTORED\tERROR")
	shown := rep.Entries
	if limit > 0 && len(shown) > limit {
		shown = shown[len(shown)-limit:]
	}
	for _, dl := range shown {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s %d\t%s\t%s\n", dl.Seq, dl.Consumer, strings.TrimPrefix(dl.Reason, "REASON_"), dl.OriginalSubject,
			dl.Stream, dl.StreamSeq, dl.Stored.UTC().Format(time.RFC3339), shorten(dl.Error, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(shown) < len(rep.Entries) {
		fmt.Fprintf(w, "(the newest %d of %d entries; -limit 0 shows all)\n", len(shown), len(rep.Entries))
	}
	return nil
}

// dlqShowReport is `dlq show --json`.
type dlqShowReport struct {
	redeliver.DeadLetter
	Headers map[string][]string `json:"headers"`
	// Payload is the original payload decoded (its ce-type's protobuf message as JSON), or, when
	// it cannot be decoded, the raw payload as a string with PayloadError saying why.
	Payload      json.RawMessage `json:"payload,omitempty"`
	PayloadRaw   string          `json:"payload_raw,omitempty"`
	PayloadError string          `json:"payload_error,omitempty"`
	Type         string          `json:"type,omitempty"`
}

func dlqShow(ctx context.Context, env cmdEnv, cl *redeliver.Client, asJSON bool, seq uint64) int {
	dl, err := cl.DeadLetter(ctx, seq)
	if err != nil {
		return connStatus(env, "dlq show", err)
	}
	rep := dlqShowReport{DeadLetter: dl, Headers: dl.Header, Type: dl.Header.Get(events.HeaderType)}
	data, err := cl.OriginalPayload(ctx, dl)
	if err == nil {
		rep.Payload, err = decodePayload(rep.Type, data)
	}
	if err != nil {
		rep.PayloadError = err.Error()
		rep.PayloadRaw = string(dl.Payload)
	}
	if asJSON {
		err = printJSON(env.stdout, rep)
	} else {
		err = printDLQShow(env.stdout, rep)
	}
	return connStatus(env, "dlq show", err)
}

// decodePayload decodes a payload as its ce-type's protobuf message and prints it as indented
// protojson.
func decodePayload(ceType string, data []byte) (json.RawMessage, error) {
	m, err := events.NewMessage(ceType)
	if err != nil {
		return nil, err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s payload: %w", ceType, err)
	}
	raw, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	// Indented here: protojson varies its own spacing between builds on purpose.
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func printDLQShow(w io.Writer, r dlqShowReport) error {
	tw := newTabWriter(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("seq", strconv.FormatUint(r.Seq, 10))
	row("consumer", r.Consumer)
	row("reason", r.Reason)
	row("error", r.Error)
	row("original subject", r.OriginalSubject)
	row("original", fmt.Sprintf("%s seq %d, %d deliveries", r.Stream, r.StreamSeq, r.Deliveries))
	row("failed at", r.FailedAt.UTC().Format(time.RFC3339Nano))
	row("stored", r.Stored.UTC().Format(time.RFC3339Nano))
	if r.RedrivenFrom != 0 {
		row("re-driven from", strconv.FormatUint(r.RedrivenFrom, 10))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nheaders:")
	for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
		for _, v := range r.Headers[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	if r.PayloadError != "" {
		fmt.Fprintf(w, "\npayload (not decodable: %s):\n%s\n", r.PayloadError, r.PayloadRaw)
		return nil
	}
	_, err := fmt.Fprintf(w, "\npayload (%s):\n%s\n", r.Type, r.Payload)
	return err
}

func dlqRedrive(ctx context.Context, env cmdEnv, cl *redeliver.Client, asJSON bool, dls []redeliver.DeadLetter) int {
	if len(dls) == 0 {
		if asJSON {
			_ = printJSON(env.stdout, redeliver.RedriveReport{Results: []redeliver.RedriveResult{}})
		} else {
			fmt.Fprintln(env.stdout, "no dead letters to re-drive")
		}
		return dlqExitOK
	}
	bar := progress.New(env.stderr, "re-drive", int64(len(dls)))
	rep, rerr := cl.Redrive(ctx, dls, func(n int) { bar.Add(int64(n)) })
	bar.Finish()
	// Printed even when the re-drive stopped part way: what was removed or dead-lettered anew
	// must be seen.
	var err error
	if asJSON {
		err = printJSON(env.stdout, rep)
	} else {
		tw := newTabWriter(env.stdout)
		fmt.Fprintln(tw, "SEQ\tCONSUMER\tOUTCOME\tNEW SEQ\tREMOVED\tERROR")
		for _, r := range rep.Results {
			newSeq := ""
			if r.NewSeq != 0 {
				newSeq = strconv.FormatUint(r.NewSeq, 10)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%s\n", r.Seq, r.Consumer, r.Outcome, newSeq, r.Removed, shorten(r.Error, 100))
		}
		_ = tw.Flush()
		_, werr := fmt.Fprintf(env.stdout, "re-driven %d: %d handled, %d failed again (dead-lettered anew), %d not handed over (kept), %d old entries not removed (purge them)\n",
			len(rep.Results), rep.OK, rep.DeadLettered, rep.Failed, rep.NotRemoved)
		if err == nil {
			err = werr
		}
	}
	if rerr != nil {
		return connStatus(env, "dlq redrive", rerr)
	}
	if err != nil {
		return connStatus(env, "dlq redrive", err)
	}
	if rep.OK != len(rep.Results) || rep.NotRemoved > 0 {
		return dlqExitFailed
	}
	return dlqExitOK
}

func dlqPurge(ctx context.Context, env cmdEnv, cl *redeliver.Client, asJSON bool, seqs []uint64, consumer string, yes bool) int {
	what := fmt.Sprintf("%d entries (%v)", len(seqs), seqs)
	if strings.ContainsAny(consumer, "*>. ") {
		// A subject wildcard here would purge every consumer's dead letters.
		return connStatus(env, "dlq purge", usageErrorf("-consumer %q: want one durable's name, no wildcard", consumer))
	}
	if consumer != "" {
		what = "every dead letter of " + consumer
	}
	if !yes {
		return connStatus(env, "dlq purge", usageErrorf("would remove %s from %s without handling them; add -yes to do it", what, events.StreamDLQ))
	}
	var n uint64
	if consumer != "" {
		var err error
		if n, err = cl.PurgeConsumer(ctx, consumer); err != nil {
			return connStatus(env, "dlq purge", err)
		}
	} else {
		k, err := cl.Remove(ctx, seqs)
		n = uint64(k)
		if err != nil {
			fmt.Fprintf(env.stderr, "cpctl dlq purge: removed %d before: %v\n", n, err)
			return dlqExitFailed
		}
	}
	var err error
	if asJSON {
		err = printJSON(env.stdout, map[string]uint64{"removed": n})
	} else {
		_, err = fmt.Fprintf(env.stdout, "removed %d dead letters (%s)\n", n, what)
	}
	return connStatus(env, "dlq purge", err)
}
