package vectors_test

import (
	"fmt"

	"cryptopill.dev/jobs/services/straux/internal/vectors"
)

// A window of prices alternating between 100 and 110: symmetric around its median, so vInner
// and vOuter are 0 and the alternating returns have no trend; but the high prices always follow
// up-moves, so vSwap is 100·tanh(1.2).
func ExampleWorkspace_Compute() {
	var prices []float64
	for i := range 12 {
		prices = append(prices, 100+10*float64(i%2))
	}
	ws := vectors.Get()
	defer vectors.Put(ws)
	v, err := ws.Compute(prices, nil, 12)
	if err != nil {
		panic(err)
	}
	fmt.Printf("n=%d inner=%.2f outer=%.2f tendency=%.2f swap=%.2f\n", v.N, v.Inner, v.Outer, v.Tendency, v.Swap)
	// Output: n=12 inner=0.00 outer=0.00 tendency=0.00 swap=83.37
}
