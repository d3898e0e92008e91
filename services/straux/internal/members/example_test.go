package members_test

import (
	"fmt"

	"cryptopill.dev/jobs/services/straux/internal/members"
)

// Every replica computes the same holder from the same live set; a new member takes some
// symbols, every other symbol stays where it was.
func ExampleOwner() {
	symbols := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"}
	three := []string{"straux-0", "straux-1", "straux-2"}
	four := []string{"straux-0", "straux-1", "straux-2", "straux-3"}
	for _, s := range symbols {
		fmt.Printf("%-8s %s → %s\n", s, members.Owner(s, three), members.Owner(s, four))
	}
	// Output:
	// BTCUSDT  straux-0 → straux-0
	// ETHUSDT  straux-0 → straux-3
	// SOLUSDT  straux-1 → straux-1
	// XRPUSDT  straux-0 → straux-0
	// DOGEUSDT straux-1 → straux-1
	// ADAUSDT  straux-2 → straux-3
}
