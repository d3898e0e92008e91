package events_test

import (
	"context"
	"testing"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
)

// BenchmarkPublishAsync measures RowChange publishes through the async publisher to an embedded
// server (file storage), the change relay's hot path.
func BenchmarkPublishAsync(b *testing.B) {
	bus := eventstest.NewBus(b)
	ctx := context.Background()
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "bench", MaxInFlight: 4096})
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
}
