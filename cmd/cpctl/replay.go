package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"cryptopill.dev/jobs/libs/progress"
	"cryptopill.dev/jobs/libs/redeliver"
)

const replayUsage = `usage: cpctl replay -stream S -service X [-durable D] (-since T | -start-seq N) [-until T | -end-seq M] [-subject F]

Re-delivers a range of a stream to one replica of a service, which runs its durable's handler
on each message (same decode, middleware, claim-check resolution and idempotency as live). The
durable is not touched and nothing is restarted: cpctl reads the range through a temporary
consumer it deletes afterwards. Handlers are idempotent, so replaying what was handled changes
nothing and replaying what was missed repairs it. A failure is reported, never dead-lettered.
T is a duration back from now (1h) or an RFC 3339 time; the range ends at the stream's last
message when neither -until nor -end-seq is given. Exit status: 0 every message handled, 1 some
failed, 2 usage or connection error.

`

func runReplay(ctx context.Context, args []string) int {
	return replayCommand(ctx, args, processEnv(), time.Now)
}

func replayCommand(ctx context.Context, args []string, env cmdEnv, now func() time.Time) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, replayUsage); fs.PrintDefaults() }
	var nf natsFlags
	nf.register(fs, 5*time.Minute)
	var opts redeliver.ReplayOptions
	fs.StringVar(&opts.Stream, "stream", "", "stream to read (CP_TICKS, CP_CDC, CP_UNIVERSE)")
	fs.StringVar(&opts.Service, "service", "", "service whose handler runs (straux, cinimport, seeder)")
	fs.StringVar(&opts.Durable, "durable", "", "durable whose handler runs, when the service runs several on the stream")
	since := fs.String("since", "", "start: messages stored since then")
	fs.Uint64Var(&opts.StartSeq, "start-seq", 0, "start: the stream sequence to begin at")
	until := fs.String("until", "", "end: messages stored until then")
	fs.Uint64Var(&opts.EndSeq, "end-seq", 0, "end: the last stream sequence (inclusive)")
	fs.StringVar(&opts.Subject, "subject", "", "only messages on subjects matching this NATS filter")
	batch := fs.Int("batch", 20, "messages per request to the service")
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	var err error
	t := now()
	if opts.Since, err = parseTime("since", *since, t); err == nil {
		opts.Until, err = parseTime("until", *until, t)
	}
	switch {
	case err != nil:
	case fs.NArg() > 0:
		err = usageErrorf("unexpected arguments %q", fs.Args())
	case opts.Stream == "" || opts.Service == "":
		err = usageErrorf("-stream and -service are required")
	case (*since == "") == (opts.StartSeq == 0):
		err = usageErrorf("give exactly one of -since and -start-seq")
	case *until != "" && opts.EndSeq != 0:
		err = usageErrorf("give at most one of -until and -end-seq")
	case opts.EndSeq != 0 && opts.EndSeq < opts.StartSeq:
		err = usageErrorf("-end-seq %d is before -start-seq %d", opts.EndSeq, opts.StartSeq)
	case *batch < 1:
		err = usageErrorf("-batch %d: want at least 1", *batch)
	}
	if err != nil {
		fs.Usage()
		return connStatus(env, "replay", err)
	}
	nc, cl, err := nf.connect(env, *batch)
	if err != nil {
		return connStatus(env, "replay", err)
	}
	defer nc.Close()

	var bar *progress.Bar
	rep, err := cl.Replay(ctx, opts,
		func(total uint64) { bar = progress.New(env.stderr, "replay "+opts.Stream, int64(total)) },
		func(n int) { bar.Add(int64(n)) })
	if bar != nil {
		bar.Finish()
	}
	if err != nil && rep.Messages == 0 {
		return connStatus(env, "replay", err)
	}
	// Stopped part way (Ctrl-C, a batch lost): what was replayed is printed before the error.
	rerr := err
	if rep.Messages == 0 {
		fmt.Fprintln(env.stderr, "replay: the range holds no message the durable reads (check -since/-start-seq and -subject)")
	}
	note := redeliver.Note(rep.Durable)
	if nf.json {
		err = printJSON(env.stdout, struct {
			redeliver.ReplayReport
			Note string `json:"note,omitempty"`
		}{rep, note})
	} else {
		w := env.stdout
		fmt.Fprintf(w, "replayed %s (%s) seq %d-%d to %s's %s: %d messages, %d ok, %d failed",
			rep.Stream, strings.Join(rep.Filters, ", "), rep.FirstSeq, rep.LastSeq, rep.Service, rep.Durable, rep.Messages, rep.OK, rep.Failed)
		if rep.Skipped > 0 {
			fmt.Fprintf(w, ", %d skipped (not read by %s)", rep.Skipped, rep.Durable)
		}
		fmt.Fprintln(w)
		if len(rep.Failures) > 0 {
			tw := newTabWriter(w)
			fmt.Fprintln(tw, "SEQ\tSUBJECT\tERROR")
			for _, f := range rep.Failures {
				fmt.Fprintf(tw, "%d\t%s\t%s\n", f.Seq, f.Subject, shorten(f.Error, 120))
			}
			_ = tw.Flush()
		}
		if note != "" {
			fmt.Fprintln(w, "note: "+note)
		}
		fmt.Fprintln(w, "the durable was not touched; nothing was restarted")
	}
	if rerr != nil {
		return connStatus(env, "replay", rerr)
	}
	if err != nil {
		return connStatus(env, "replay", err)
	}
	if rep.Failed > 0 {
		return dlqExitFailed
	}
	return dlqExitOK
}
