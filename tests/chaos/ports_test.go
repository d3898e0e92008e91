package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPortAllocatorHandsOutEachPortOnceBelowTheEphemeralRange(t *testing.T) {
	t.Parallel()
	p := newPortAllocator(12345)
	seen := map[int]bool{}
	for range 50 {
		port, err := p.get()
		require.NoError(t, err)
		require.GreaterOrEqual(t, port, portLow)
		require.Less(t, port, portHigh)
		require.False(t, seen[port], "port %d handed out twice", port)
		seen[port] = true
	}
}
