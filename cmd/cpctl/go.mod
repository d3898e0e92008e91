module cryptopill.dev/jobs/cmd/cpctl

go 1.26.0

require (
	cryptopill.dev/jobs/libs v0.0.0
	cryptopill.dev/jobs/proto v0.0.0
)

require github.com/compose-spec/compose-go/v2 v2.16.2 // indirect

replace (
	cryptopill.dev/jobs/libs => ../../libs
	cryptopill.dev/jobs/proto => ../../proto
)
