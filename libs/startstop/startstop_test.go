package startstop_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/startstop"
)

type loop struct {
	startstop.Base
	runs atomic.Int32
}

func (l *loop) Start(ctx context.Context) error {
	ctx, ok, stopped := l.StartInit(ctx)
	if !ok {
		return startstop.ErrAlreadyStarted
	}
	l.runs.Add(1)
	go func() {
		defer stopped()
		<-ctx.Done()
	}()
	return nil
}

func TestStartStopConcurrently(t *testing.T) {
	t.Parallel()
	l := &loop{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = l.Start(context.Background()) }()
	}
	wg.Wait()
	require.EqualValues(t, 1, l.runs.Load())
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); l.Stop() }()
	}
	wg.Wait()
	require.NoError(t, l.Start(context.Background()), "restart after stop")
	l.Stop()
	l.Stop()
}
