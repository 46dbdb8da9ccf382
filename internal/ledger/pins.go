package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// Pin is the content of a pin file: who holds the set and why.
type Pin struct {
	Set    string    `json:"set"`
	Reason string    `json:"reason"` // "restoring" or "live"
	Host   string    `json:"host"`
	PID    int       `json:"pid"`
	Time   time.Time `json:"time"`
}

// SetPins makes dir (a channel's pins/ directory) hold exactly the pins in
// keep (set id -> reason): it writes each of them (atomically) and removes
// every other pin. Empty set ids in keep are ignored. Temporary files of other
// writers (.tmp-*) are left alone.
func SetPins(dir string, keep map[string]string) error {
	if err := os.MkdirAll(dir, manifest.DirPerm); err != nil {
		return fmt.Errorf("pins: create %s: %w", dir, err)
	}
	host, _ := os.Hostname()
	for set, reason := range keep {
		if set == "" {
			continue
		}
		if strings.ContainsAny(set, `/\`) || set == "." || set == ".." {
			return fmt.Errorf("pins: invalid set id %q", set)
		}
		b, _ := json.Marshal(Pin{Set: set, Reason: reason, Host: host, PID: os.Getpid(), Time: time.Now().UTC()})
		if err := manifest.WriteFileAtomic(filepath.Join(dir, set), append(b, '\n'), manifest.FilePerm); err != nil {
			return fmt.Errorf("pins: %w", err)
		}
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pins: read %s: %w", dir, err)
	}
	var errs []error
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, manifest.TempPrefix) {
			continue
		}
		if _, ok := keep[name]; ok {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("pins: remove %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// ReadPins returns the pins in dir by set id; a missing directory holds none.
func ReadPins(dir string) (map[string]Pin, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Pin{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pins: read %s: %w", dir, err)
	}
	out := map[string]Pin{}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), manifest.TempPrefix) || de.IsDir() {
			continue
		}
		var p Pin
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err == nil {
			_ = json.Unmarshal(b, &p)
		}
		p.Set = de.Name()
		out[de.Name()] = p
	}
	return out, nil
}
