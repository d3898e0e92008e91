package config_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
)

func TestNATSAuthMethods(t *testing.T) {
	t.Parallel()
	seed := writeSecret(t, "SUAxxx\n")
	for name, tc := range map[string]struct {
		env    map[string]string
		method string
	}{
		"none":             {map[string]string{}, "none"},
		"creds":            {map[string]string{"NATS_CREDS": seed}, "creds"},
		"nkey":             {map[string]string{"NATS_NKEY_SEED_FILE": seed}, "nkey"},
		"nats CLI's name":  {map[string]string{"NATS_NKEY": seed}, "nkey"},
		"both names, same": {map[string]string{"NATS_NKEY": seed, "NATS_NKEY_SEED_FILE": seed}, "nkey"},
		"user":             {map[string]string{"NATS_USER": "straux", "NATS_PASSWORD": "pw"}, "user"},
		"password file":    {map[string]string{"NATS_USER": "straux", "NATS_PASSWORD_FILE": writeSecret(t, "pw\n")}, "user"},
		"token file":       {map[string]string{"NATS_TOKEN_FILE": writeSecret(t, "tok")}, "token"},
		"tls without auth": {map[string]string{"NATS_TLS_CA": seed, "NATS_TLS_CERT": seed, "NATS_TLS_KEY": seed}, "none"},
	} {
		l := config.NewLoader(env(tc.env))
		a := l.LoadNATSAuth()
		require.NoError(t, l.Err(), name)
		require.Equal(t, tc.method, a.Method(), name)
	}
}

// Each bad combination is refused naming the variables, and no error holds a secret.
func TestNATSAuthErrorsNameTheVariables(t *testing.T) {
	t.Parallel()
	seed := writeSecret(t, "SUAxxx\n")
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"two methods":         {map[string]string{"NATS_CREDS": seed, "NATS_USER": "u", "NATS_PASSWORD": "s3cret"}, []string{"NATS_CREDS", "NATS_USER", "only one"}},
		"password, no user":   {map[string]string{"NATS_PASSWORD": "s3cret"}, []string{"NATS_PASSWORD", "without NATS_USER"}},
		"user, no password":   {map[string]string{"NATS_USER": "u"}, []string{"NATS_USER", "without NATS_PASSWORD"}},
		"password both forms": {map[string]string{"NATS_USER": "u", "NATS_PASSWORD": "s3cret", "NATS_PASSWORD_FILE": seed}, []string{"NATS_PASSWORD and NATS_PASSWORD_FILE"}},
		"token both forms":    {map[string]string{"NATS_TOKEN": "s3cret", "NATS_TOKEN_FILE": seed}, []string{"NATS_TOKEN and NATS_TOKEN_FILE"}},
		"cert without key":    {map[string]string{"NATS_TLS_CERT": seed}, []string{"NATS_TLS_CERT and NATS_TLS_KEY"}},
		"missing creds file":  {map[string]string{"NATS_CREDS": "/nonexistent/cp.creds"}, []string{"NATS_CREDS", "/nonexistent/cp.creds"}},
		"two seed files":      {map[string]string{"NATS_NKEY": seed, "NATS_NKEY_SEED_FILE": "/other"}, []string{"NATS_NKEY_SEED_FILE and NATS_NKEY"}},
	} {
		l := config.NewLoader(env(tc.env))
		l.LoadNATSAuth()
		err := l.Err()
		require.Error(t, err, name)
		for _, w := range tc.want {
			require.ErrorContains(t, err, w, name)
		}
		require.NotContains(t, err.Error(), "s3cret", name)
	}
}

// Printing the identity, however it is printed, shows no secret.
func TestNATSAuthPrintsNoSecret(t *testing.T) {
	t.Parallel()
	a := config.NATSAuth{User: "straux", Password: "s3cret", Token: "t0ken"}
	for _, s := range []string{a.String(), fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a),
		fmt.Sprintf("%+v", config.Common{NATS: a})} {
		require.NotContains(t, s, "s3cret")
		require.NotContains(t, s, "t0ken")
	}
}
