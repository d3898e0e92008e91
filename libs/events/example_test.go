package events_test

import (
	"context"
	"log"
	"time"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Each service applies its own part of the topology at start (what it owns; it waits for the
// streams it only uses), publishes with a Publisher and consumes its durable with a Consumer
// until its context ends. Here one process plays the orchestrator and straux.
func Example() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	topo := events.NewTopology(events.TopologyConfig{Replicas: 1})
	if err := topo.ApplyAs(ctx, js, events.ServiceOrchestrator); err != nil {
		log.Fatal(err)
	}
	if err := topo.ApplyAs(ctx, js, events.ServiceStraux); err != nil {
		log.Fatal(err) // a *StreamMissingError had straux started before the orchestrator
	}

	// Orchestrator side: one tick per period, the same id from every orchestrator.
	pub, err := events.NewPublisher(nc, events.PublisherConfig{Source: "orchestrator"})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close(ctx)
	start := time.Now().Truncate(40 * time.Second)
	fut, err := pub.PublishAsync(ctx, events.Event{
		Subject: events.TickSubject(events.ModuleStraux),
		ID:      events.TickID(events.ModuleStraux, start),
		Payload: &eventsv1.Tick{
			Module:          events.ModuleStraux,
			PeriodStart:     timestamppb.New(start),
			Period:          durationpb.New(40 * time.Second),
			RunnerSessionId: "str-aux-runner",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := fut.Wait(ctx); err != nil {
		log.Printf("tick not published: %v", err)
	}

	// straux side: handle ticks until ctx ends.
	c, err := events.NewConsumer(ctx, js, events.ConsumerConfig{
		Stream:         events.StreamTicks,
		Durable:        events.ConsumerStrauxTicks,
		HandlerTimeout: 30 * time.Second,
		Handler: func(ctx context.Context, ev events.Event) error {
			tick := ev.Payload.(*eventsv1.Tick)
			log.Printf("tick %s at %s", tick.GetModule(), tick.GetPeriodStart().AsTime())
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
