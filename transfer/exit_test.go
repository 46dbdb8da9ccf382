package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestCopyMismatchIsCorrupt: a copied file that does not match the manifest
// is a manifest.ErrCorrupt, and exits 5 through the shared rules alone.
func TestCopyMismatchIsCorrupt(t *testing.T) {
	err := fmt.Errorf("objects/ab/x from /src: %w: 3 bytes, the manifest says 4", mover.ErrCorrupt)
	if !errors.Is(err, manifest.ErrCorrupt) || !errors.Is(err, mover.ErrCorrupt) || errors.Is(err, manifest.ErrIncomplete) {
		t.Fatalf("%v: not a kind of manifest.ErrCorrupt alone", err)
	}
	if got := exitCode(err); got != cli.ExitIntegrity {
		t.Fatalf("exit code %d, want %d", got, cli.ExitIntegrity)
	}
	if got := exitCode(fmt.Errorf("%w: %w", mover.ErrSourceChanged, err)); got != cli.ExitIntegrity {
		t.Fatalf("a changed source with a mismatch: exit code %d, want %d (integrity before try again)", got, cli.ExitIntegrity)
	}
	if err.Error() != "objects/ab/x from /src: content does not match the manifest: 3 bytes, the manifest says 4" {
		t.Fatalf("message %q", err)
	}
}
