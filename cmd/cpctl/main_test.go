package main

import (
	"testing"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
