package jobs_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/jobs"
)

// A seeder enqueues work; re-running it never duplicates a queued or running job.
func ExampleEnqueueMany() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/cryptopill")
	if err != nil {
		log.Fatal(err)
	}
	var seed []jobs.NewJob
	for _, symbol := range []string{"BTCUSDT", "ETHUSDT"} {
		for _, window := range []string{"30m", "1h", "4h"} {
			seed = append(seed, jobs.NewJob{
				Kind:    jobs.KindFetchKlines,
				Key:     jobs.Key(symbol, window),
				Payload: map[string]string{"symbol": symbol, "window": window},
				Period:  40 * time.Second,
			})
		}
	}
	res, err := jobs.EnqueueMany(ctx, pool, seed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("inserted %d, already present %d\n", res.Inserted, res.Existing)

	// A symbol left the universe: withdraw its queued and running work.
	n, err := jobs.CancelMatching(ctx, pool, jobs.CancelFilter{Payload: map[string]string{"symbol": "ETHUSDT"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("cancelled %d\n", n)
}

// A service works jobs with an engine and stops it within a deadline at shutdown.
func ExampleEngine() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/cryptopill")
	if err != nil {
		log.Fatal(err)
	}
	engine, err := jobs.New(pool, jobs.Config{}) // zero value: the documented defaults
	if err != nil {
		log.Fatal(err)
	}
	err = engine.Register(jobs.KindFetchKlines, jobs.HandlerFunc(func(ctx context.Context, job jobs.Job) error {
		var p struct{ Symbol, Window string }
		if err := job.DecodePayload(&p); err != nil {
			return jobs.Permanent(err) // retrying cannot fix a malformed payload
		}
		// ... fetch and upsert the klines of p.Symbol over p.Window
		return nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// On every tick event: look for due work now.
	engine.Wake()

	// At shutdown: finish what is running within 10 seconds, hand the rest back.
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := engine.Stop(stopCtx); err != nil {
		log.Print(err)
	}
}
