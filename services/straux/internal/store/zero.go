package store

import (
	"cryptopill.dev/jobs/services/straux/internal/idhr"
	"cryptopill.dev/jobs/services/straux/internal/vectors"
)

// Stand-ins read (and written as NULL) for windows without values.
var (
	idhrZero idhr.Stats
	vecZero  vectors.Vectors
)
