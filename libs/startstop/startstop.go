// Package startstop is the one way every long-running component starts, stops and is waited for,
// after River's rivershared/startstop: Start launches the component's loop once; Stop cancels it
// and waits until the loop has returned; both are safe to call concurrently and more than once.
package startstop

import (
	"context"
	"errors"
	"sync"
)

// Service is a component with a background loop.
type Service interface {
	Start(ctx context.Context) error
	Stop()
}

// ErrAlreadyStarted is returned by Start on a running component.
var ErrAlreadyStarted = errors.New("startstop: already started")

// Base is embedded by components. Their Start calls StartInit, and launches a goroutine that runs
// the loop and calls the returned stopped func when it exits.
type Base struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
}

// StartInit prepares a start. ok is false when already started; otherwise ctx is the loop's
// context (cancelled by Stop) and stopped must be called exactly once when the loop exits.
func (b *Base) StartInit(ctx context.Context) (loopCtx context.Context, ok bool, stopped func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return nil, false, nil
	}
	loopCtx, b.cancel = context.WithCancel(ctx)
	ch := make(chan struct{})
	b.stopped = ch
	var once sync.Once
	return loopCtx, true, func() { once.Do(func() { close(ch) }) }
}

// Stop cancels the loop and waits for it to exit. A no-op when not started.
func (b *Base) Stop() {
	b.mu.Lock()
	cancel, stopped := b.cancel, b.stopped
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-stopped
	b.mu.Lock()
	if b.stopped == stopped {
		b.cancel, b.stopped = nil, nil
	}
	b.mu.Unlock()
}

// Stopped returns a channel closed when the current loop exits (nil when not started).
func (b *Base) Stopped() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped
}

// StopAll stops services in reverse order of the slice, as dependencies usually start first.
func StopAll(services ...Service) {
	for i := len(services) - 1; i >= 0; i-- {
		services[i].Stop()
	}
}
