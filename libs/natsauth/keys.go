package natsauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"

	"cryptopill.dev/jobs/libs/events"
)

// Files written by WriteKeys.
const (
	PermissionsFile = "permissions.conf"
	UsersFile       = "users.conf"
)

// Keys are the nkey identities in a directory written by WriteKeys.
type Keys struct {
	Dir string
	// Public is each identity's nkey public key (U…), as the users file lists it.
	Public map[string]string
}

// SeedFile is the file holding identity's nkey seed: NATS_NKEY_SEED_FILE for its processes.
func (k Keys) SeedFile(identity string) string { return filepath.Join(k.Dir, identity+".nk") }

// UsersFile is the users file: include it in a server configuration (it includes the
// permissions beside it).
func (k Keys) UsersFile() string { return filepath.Join(k.Dir, UsersFile) }

// WriteKeys makes dir (mode 0700) hold one nkey seed per identity (<identity>.nk, mode 0600;
// an existing seed is kept, so restarts keep their identities), the permissions for topo
// (permissions.conf) and the users file that maps each public key to its permissions
// (users.conf).
func WriteKeys(dir string, topo events.Topology) (Keys, error) {
	return WriteKeysMode(dir, topo, 0o600)
}

// WriteKeysMode is WriteKeys with the seeds' file mode: 0644 for seeds bind-mounted into
// containers that run as another user (compose secrets), still kept from other local users by
// the directory's 0700.
func WriteKeysMode(dir string, topo events.Topology, seedMode os.FileMode) (Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("nats keys dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("nats keys dir %s: %w", dir, err)
	}
	k := Keys{Dir: dir, Public: map[string]string{}}
	for _, id := range Identities() {
		pub, err := ensureSeed(k.SeedFile(id), seedMode)
		if err != nil {
			return Keys{}, err
		}
		k.Public[id] = pub
	}
	if err := os.WriteFile(filepath.Join(dir, PermissionsFile), []byte(RenderPermissions(topo)), 0o644); err != nil {
		return Keys{}, fmt.Errorf("write %s: %w", PermissionsFile, err)
	}
	if err := os.WriteFile(k.UsersFile(), []byte(RenderUsers(PermissionsFile, k.Public)), 0o644); err != nil {
		return Keys{}, fmt.Errorf("write %s: %w", UsersFile, err)
	}
	return k, nil
}

// ensureSeed returns the public key of the user seed in path, creating the seed when absent.
func ensureSeed(path string, mode os.FileMode) (string, error) {
	seed, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", fmt.Errorf("create nkey %s: %w", path, err)
		}
		if seed, err = kp.Seed(); err != nil {
			return "", fmt.Errorf("nkey seed %s: %w", path, err)
		}
		if err := os.WriteFile(path, append(seed, '\n'), mode); err != nil {
			return "", fmt.Errorf("write nkey seed %s: %w", path, err)
		}
	case err != nil:
		return "", fmt.Errorf("read nkey seed %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return "", fmt.Errorf("nkey seed %s: %w", path, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		// nkeys' errors describe the format, never the content.
		return "", fmt.Errorf("nkey seed %s: %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("nkey seed %s: %w", path, err)
	}
	return pub, nil
}
