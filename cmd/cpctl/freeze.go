package main

import (
	"context"
	"cryptopill.dev/jobs/libs/config"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/jobs"
)

// Freeze: the orchestrator stops a module's ticks while its freeze flag is set in the CP_FLAGS
// KV bucket (docs/orchestrator.md); cpctl freeze also pauses the job kinds of the module that call
// the exchange, so a frozen module makes no exchange traffic at all. Each pause is made under the
// flag's key as its source, so unfreeze lifts exactly those and never a pause an operator made by
// hand (or another freeze made).

// The flag names the orchestrator watches (services/orchestrator/internal/ticks/freeze.go).
const (
	defaultFlagsBucket = "CP_FLAGS"
	freezeFlag         = "freeze" // every module; freeze.<module> freezes one
)

// exchangeKinds are, per module, the job kinds that call the exchange. cinimport's exchange
// traffic (account trade sync) is not a job kind: freezing it stops its sweep ticks only.
var exchangeKinds = map[string][]jobs.Kind{
	events.ModuleStraux:    {jobs.KindFetchKlines, jobs.KindFetchOrderbook, jobs.KindFetchTicker},
	events.ModuleCinimport: nil,
}

// freezeKey is the flag of module ("" every module).
func freezeKey(module string) string {
	if module == "" {
		return freezeFlag
	}
	return freezeFlag + "." + module
}

// kindsOf are the exchange-calling kinds a freeze of module ("" every module) pauses.
func kindsOf(module string) []jobs.Kind {
	if module != "" {
		return exchangeKinds[module]
	}
	var all []jobs.Kind
	for _, ks := range exchangeKinds {
		all = append(all, ks...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func checkModule(module string) error {
	if _, ok := exchangeKinds[module]; module != "" && !ok {
		names := make([]string, 0, len(exchangeKinds))
		for m := range exchangeKinds {
			names = append(names, m)
		}
		slices.Sort(names)
		return usageErrorf("unknown module %q (want one of %s, or none for every module)", module, strings.Join(names, ", "))
	}
	return nil
}

// flagIsSet is the orchestrator's reading of a flag value: anything but "", 0, false, no, off.
func flagIsSet(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

// frozenModule is a set freeze flag.
type frozenModule struct {
	// Module is the module frozen; "*" for the flag that freezes every module.
	Module string    `json:"module"`
	Key    string    `json:"key"`
	Value  string    `json:"value"`
	Since  time.Time `json:"since"`
}

// readFrozen returns the set freeze flags of the bucket.
func readFrozen(ctx context.Context, kv jetstream.KeyValue) ([]frozenModule, error) {
	lister, err := kv.ListKeysFiltered(ctx, freezeFlag, freezeFlag+".*")
	if err != nil {
		return nil, fmt.Errorf("list freeze flags of %s: %w", kv.Bucket(), err)
	}
	var out []frozenModule
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read flag %s of %s: %w", key, kv.Bucket(), err)
		}
		if !flagIsSet(string(e.Value())) {
			continue
		}
		module := strings.TrimPrefix(strings.TrimPrefix(key, freezeFlag), ".")
		if module == "" {
			module = "*"
		}
		out = append(out, frozenModule{Module: module, Key: key, Value: string(e.Value()), Since: e.Created()})
	}
	slices.SortFunc(out, func(a, b frozenModule) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// flagsConn is the NATS connection and the flags bucket cpctl reads and writes.
type flagsConn struct {
	nc *nats.Conn
	kv jetstream.KeyValue
}

func (c *flagsConn) Close() { c.nc.Close() }

// openFlags connects to NATS and opens the flags bucket, which the orchestrator creates at start.
func openFlags(ctx context.Context, url, bucket string) (*flagsConn, error) {
	safe := config.SafeNATSURL(url) // never the URL's password in a message
	nc, err := dialNATS(url, nats.Name("cpctl"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, connErrorf("connect to NATS %s: %w", safe, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, connErrorf("JetStream on %s: %w", safe, err)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		nc.Close()
		return nil, fmt.Errorf("KV bucket %s not found on %s: the orchestrator creates it at start (FLAGS_BUCKET); is one running against this NATS?", bucket, safe)
	}
	if err != nil {
		nc.Close()
		return nil, connErrorf("open KV bucket %s on %s: %w", bucket, safe, err)
	}
	return &flagsConn{nc: nc, kv: kv}, nil
}

// freezeReport is what freeze and unfreeze did.
type freezeReport struct {
	Action string `json:"action"` // freeze or unfreeze
	Module string `json:"module"` // "" every module
	Key    string `json:"key"`
	// Paused are the kinds this freeze paused now; Resumed those unfreeze lifted its pause of.
	Paused  []jobs.Kind `json:"paused,omitempty"`
	Resumed []jobs.Kind `json:"resumed,omitempty"`
	// StillPaused are pauses left after an unfreeze (an operator's, another freeze's).
	StillPaused []jobs.KindPause `json:"still_paused,omitempty"`
}

// freeze pauses module's exchange-calling kinds under the flag's key, then sets the flag. Run
// again after a failure it completes what is missing.
func freeze(ctx context.Context, q jobs.Querier, kv jetstream.KeyValue, module, reason string) (freezeReport, error) {
	key := freezeKey(module)
	rep := freezeReport{Action: "freeze", Module: module, Key: key}
	if reason == "" {
		reason = "frozen by cpctl freeze"
	}
	if kinds := kindsOf(module); len(kinds) > 0 {
		paused, err := jobs.PauseFor(ctx, q, key, kinds, reason)
		if err != nil {
			return rep, err
		}
		rep.Paused = paused
	}
	// The value is what operators see in `nats kv get`; any text but the "off" words is set.
	if _, err := kv.PutString(ctx, key, reason); err != nil {
		return rep, fmt.Errorf("set flag %s in %s (the kinds are paused; run freeze again): %w", key, kv.Bucket(), err)
	}
	return rep, nil
}

// unfreeze clears the flag, then lifts the pauses the freeze made (and only those).
func unfreeze(ctx context.Context, q jobs.Querier, kv jetstream.KeyValue, module string) (freezeReport, error) {
	key := freezeKey(module)
	rep := freezeReport{Action: "unfreeze", Module: module, Key: key}
	if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return rep, fmt.Errorf("clear flag %s in %s: %w", key, kv.Bucket(), err)
	}
	resumed, err := jobs.ResumeFor(ctx, q, key, nil)
	if err != nil {
		return rep, fmt.Errorf("the flag is clear, but its pauses are not lifted (run unfreeze again): %w", err)
	}
	rep.Resumed = resumed
	left, err := jobs.Paused(ctx, q)
	if err != nil {
		return rep, err
	}
	rep.StillPaused = left
	return rep, nil
}

func runFreeze(ctx context.Context, args []string) int {
	return freezeCommand(ctx, "freeze", args, processEnv())
}

func runUnfreeze(ctx context.Context, args []string) int {
	return freezeCommand(ctx, "unfreeze", args, processEnv())
}

// freezeCommand is `cpctl freeze [module]` and `cpctl unfreeze [module]`.
func freezeCommand(ctx context.Context, action string, args []string, env cmdEnv) int {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: cpctl %s [module] [--reason TEXT] [--json] [--database-url URL] [--nats-url URL]\n\n", action)
		if action == "freeze" {
			fmt.Fprint(env.stderr, "Stops a module's ticks (no module: every module) and pauses the job kinds of the module that\n"+
				"call the exchange (straux: fetch_klines, fetch_orderbook, fetch_ticker), so it makes no\n"+
				"exchange traffic. `cpctl unfreeze` undoes exactly that; kinds paused by hand stay paused.\n\n")
		} else {
			fmt.Fprint(env.stderr, "Clears a module's freeze flag and resumes the job kinds its freeze paused (and only those).\n\n")
		}
		fs.PrintDefaults()
	}
	var (
		dbFlag   databaseFlag
		natsURL  natsFlag
		asJSON   bool
		reason   string
		bucket   string
		bucketEV = defaultFlagsBucket
	)
	if b, ok := env.lookupEnv("FLAGS_BUCKET"); ok && b != "" {
		bucketEV = b
	}
	dbFlag.register(fs)
	natsURL.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print what was done as JSON")
	fs.StringVar(&bucket, "flags-bucket", bucketEV, "KV bucket of the flags (default $FLAGS_BUCKET, else CP_FLAGS)")
	if action == "freeze" {
		fs.StringVar(&reason, "reason", "", "why (stored as the flag's value and the pauses' reason)")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	module := ""
	switch len(pos) {
	case 0:
	case 1:
		module = pos[0]
	default:
		err = usageErrorf("unexpected arguments %q", pos[1:])
	}
	if err == nil {
		err = checkModule(module)
	}
	if err != nil {
		fs.Usage()
		return connStatus(env, action, err)
	}
	url, err := dbFlag.resolve(env)
	if err != nil {
		return connStatus(env, action, err)
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		return connStatus(env, action, connError{err: err})
	}
	defer pool.Close()
	fc, err := openFlags(ctx, natsURL.resolve(env), bucket)
	if err != nil {
		return connStatus(env, action, err)
	}
	defer fc.Close()

	var rep freezeReport
	if action == "freeze" {
		rep, err = freeze(ctx, pool, fc.kv, module, reason)
	} else {
		rep, err = unfreeze(ctx, pool, fc.kv, module)
	}
	if err != nil {
		return connStatus(env, action, err)
	}
	if asJSON {
		return connStatus(env, action, printJSON(env.stdout, rep))
	}
	what := "every module"
	if module != "" {
		what = module
	}
	if action == "freeze" {
		fmt.Fprintf(env.stdout, "frozen: %s (flag %s in %s): ticks stop within one period\n", what, rep.Key, fc.kv.Bucket())
		fmt.Fprintf(env.stdout, "paused by this freeze: %s\n", kindList(rep.Paused))
		return jobsExitOK
	}
	// Another flag may still freeze the module (the global one, or the module's own).
	var still []string
	if left, err := readFrozen(ctx, fc.kv); err != nil {
		fmt.Fprintf(env.stderr, "cpctl unfreeze: %v (cannot tell whether another freeze flag is set)\n", err)
	} else {
		for _, f := range left {
			if f.Module == "*" || module == "" || f.Module == module {
				still = append(still, f.Key)
			}
		}
	}
	if len(still) > 0 {
		fmt.Fprintf(env.stdout, "unfrozen: %s (flag %s cleared), but ticks stay frozen: flag %s still set (cpctl unfreeze without a module clears the global one)\n",
			what, rep.Key, strings.Join(still, ", "))
	} else {
		fmt.Fprintf(env.stdout, "unfrozen: %s (flag %s cleared): ticks resume at once\n", what, rep.Key)
	}
	fmt.Fprintf(env.stdout, "resumed: %s\n", kindList(rep.Resumed))
	if len(rep.StillPaused) > 0 {
		fmt.Fprintln(env.stdout, "still paused:")
		for _, p := range rep.StillPaused {
			fmt.Fprintf(env.stdout, "  %s by %s (%s)\n", p.Kind, p.Source, p.Reason)
		}
	}
	return jobsExitOK
}

func kindList(kinds []jobs.Kind) string {
	if len(kinds) == 0 {
		return "none"
	}
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
