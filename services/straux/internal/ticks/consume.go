package ticks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// TickOf reads a Tick from an event.
func TickOf(ev events.Event) (Tick, error) {
	t, ok := ev.Payload.(*eventsv1.Tick)
	if !ok {
		return Tick{}, fmt.Errorf("%s %s carries %T, want a Tick", ev.Subject, ev.ID, ev.Payload)
	}
	if t.GetPeriodStart() == nil || t.GetPeriod() == nil || t.GetPeriod().AsDuration() <= 0 {
		return Tick{}, fmt.Errorf("tick %s: no period start or period", ev.ID)
	}
	return Tick{PeriodStart: t.GetPeriodStart().AsTime(), Period: t.GetPeriod().AsDuration()}, nil
}

// Handler is the durable consumer's handler: a malformed tick is dead-lettered at once, any
// other failure is retried by redelivery. A late tick an operator hands over (cpctl replay,
// cpctl dlq redrive) repairs its period from klines instead of marking it skipped.
func (r *Runner) Handler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		t, err := TickOf(ev)
		if err != nil {
			return events.Permanent(err)
		}
		if _, byOperator := events.OperatorDelivery(ctx); byOperator && r.late(t) {
			// A past period's order books cannot be sampled again: repaired from klines.
			return r.repairLate(ctx, t)
		}
		return r.HandleTick(ctx, t)
	}
}

// AssistTicks watches cp.tick.straux through an ordered (ephemeral) consumer from new messages
// on, and joins every tick's work until ctx ends. It lets replicas that do not hold a tick's
// durable message share its sampling.
func (r *Runner) AssistTicks(ctx context.Context, js jetstream.JetStream) error {
	for {
		err := r.assistOnce(ctx, js)
		if ctx.Err() != nil || r.isDraining() {
			return nil
		}
		r.log.Warn("tick assist consumer stopped; restarting", "err", err)
		if !r.sleep(ctx, time.Second) {
			return nil
		}
	}
}

func (r *Runner) assistOnce(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.OrderedConsumer(ctx, events.StreamTicks, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.TickSubject(events.ModuleStraux)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", events.StreamTicks, err)
	}
	it, err := cons.Messages(events.PullOptions()...)
	if err != nil {
		return err
	}
	defer it.Stop()
	// A consumer span like the durable's ("process cp.tick.straux"), so a period this replica
	// starts from the broadcast is in the tick's trace under a consume span too.
	assist := events.Trace(r.cfg.TracerProvider, "straux-assist")(func(ctx context.Context, ev events.Event) error {
		t, err := TickOf(ev)
		if err != nil {
			return nil // the durable consumer dead-letters it
		}
		r.Assist(ctx, t)
		return nil
	})
	done := make(chan struct{})
	defer close(done) // the stopper below must not outlive this attempt
	go func() {
		select {
		case <-ctx.Done():
		case <-r.draining:
		case <-done:
		}
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		mctx, ev, err := events.Decode(ctx, &nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			continue // the durable consumer dead-letters it
		}
		_ = assist(mctx, ev)
	}
}
