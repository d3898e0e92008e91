// Command natsperm prints the NATS permissions derived from the declared topology, the content of
// deploy/nats/permissions.conf: `make natsperm` writes it, and libs/natsauth's tests fail while
// the committed file differs.
package main

import (
	"fmt"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
)

func main() {
	fmt.Print(natsauth.RenderPermissions(events.NewTopology(events.TopologyConfig{})))
}
