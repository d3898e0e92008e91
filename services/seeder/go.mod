module cryptopill.dev/jobs/services/seeder

go 1.26.0

require (
	cryptopill.dev/jobs/libs v0.0.0
	cryptopill.dev/jobs/proto v0.0.0
)

replace (
	cryptopill.dev/jobs/libs => ../../libs
	cryptopill.dev/jobs/proto => ../../proto
)
