module cryptopill.dev/jobs/proto

go 1.26.0
