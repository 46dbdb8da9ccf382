package site

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/squirro-bcp/bcp/manifest"
)

// Role is a site's role.
type Role string

const (
	Active  Role = "active"
	Standby Role = "standby"
)

// DefaultPath is where the role file is looked for when none is configured.
const DefaultPath = "/etc/squirro-bcp/role"

var (
	// ErrNoRole: the role file does not exist. Programs map it to exit 2
	// (configuration): a site must say what it is.
	ErrNoRole = errors.New("site role file missing")
	// ErrBadRole: the role file holds something other than active/standby.
	ErrBadRole = errors.New("site role file invalid")
	// ErrWrongRole: the site's role forbids the operation (exit 6).
	ErrWrongRole = errors.New("refused: wrong site role")
)

// Read returns the role in the file at path.
func Read(path string) (Role, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s does not exist; write \"active\" or \"standby\" into it (or set the role file path)", ErrNoRole, path)
	}
	if err != nil {
		return "", fmt.Errorf("read site role %s: %w", path, err)
	}
	r := Role(strings.TrimSpace(string(b)))
	if r != Active && r != Standby {
		return "", fmt.Errorf("%w: %s holds %q, want \"active\" or \"standby\"", ErrBadRole, path, string(r))
	}
	return r, nil
}

// Require returns nil if the role at path is want, an error wrapping
// ErrWrongRole if it is the other role, or Read's error.
func Require(path string, want Role, doing string) error {
	r, err := Read(path)
	if err != nil {
		return err
	}
	if r != want {
		return fmt.Errorf("%w: this site is %s (%s), %s runs only on a %s site", ErrWrongRole, r, path, doing, want)
	}
	return nil
}

// Write sets the role atomically (0644, the directory must exist).
func Write(path string, r Role) error {
	if r != Active && r != Standby {
		return fmt.Errorf("%w: %q", ErrBadRole, string(r))
	}
	if err := manifest.WriteFileAtomic(path, []byte(string(r)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write site role %s: %w", path, err)
	}
	return nil
}
