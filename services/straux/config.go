package main

import "cryptopill.dev/jobs/libs/config"

// Config is the straux's configuration, read from the environment.
type Config struct {
	config.Common
}

// LoadConfig reads the straux's configuration.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	l := config.NewLoader(lookup)
	cfg := Config{Common: l.LoadCommon("127.0.0.1:9102")}
	return cfg, l.Err()
}
