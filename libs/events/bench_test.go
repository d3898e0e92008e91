package events_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
)

// BenchmarkPublishAsync measures RowChange publishes through the async publisher to an embedded
// server (file storage), the change relay's hot path, without and with a claim-check (which only
// measures each message: none of these is large).
func BenchmarkPublishAsync(b *testing.B) {
	for _, withClaims := range []bool{false, true} {
		name := "plain"
		if withClaims {
			name = "claimcheck"
		}
		b.Run(name, func(b *testing.B) {
			bus := eventstest.NewBus(b)
			ctx := context.Background()
			cfg := events.PublisherConfig{Source: "bench", MaxInFlight: 4096}
			if withClaims {
				cfg.ClaimCheck = bus.Claims
			}
			pub, err := events.NewPublisher(bus.Conn, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close(ctx)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := pub.PublishAsync(ctx, changeEvent(i)); err != nil {
					b.Fatal(err)
				}
			}
			if err := pub.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if st := pub.Stats(); st.Failed > 0 {
				b.Fatalf("%d failed", st.Failed)
			}
		})
	}
}

// BenchmarkClaimCheck measures one offload and one resolve of a 2 MiB payload (a row with a 2 MB
// text value) through an embedded server (file storage): the cost a large event adds.
func BenchmarkClaimCheck(b *testing.B) {
	bus := eventstest.NewBus(b)
	ctx := context.Background()
	payload := bytes.Repeat([]byte("l"), 2<<20)
	b.SetBytes(int64(len(payload)))
	for i := 0; b.Loop(); i++ {
		m := nats.NewMsg("cp.cdc.cin_aux.rt_session.update")
		m.Header.Set(events.HeaderMsgID, strconv.Itoa(i))
		m.Data = payload
		if off, err := bus.Claims.Offload(ctx, m); err != nil || !off {
			b.Fatalf("offload: %v %v", off, err)
		}
		if _, err := bus.Claims.Resolve(ctx, m.Header, m.Data); err != nil {
			b.Fatal(err)
		}
	}
}
