package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestStatusFutureSet: a newest set dated a year after the local clock is
// flagged (not just "in step"), and no lag is negative.
func TestStatusFutureSet(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	future := manifest.SetID(2, now.AddDate(1, 0, 0))
	src, dst := t.TempDir(), t.TempDir()
	for _, d := range []string{src, dst} {
		for _, id := range []string{manifest.SetID(1, now.Add(-time.Hour)), future} {
			dir := filepath.Join(d, manifest.SetsDirName, id)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, manifest.SignatureFileName), nil, 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out bytes.Buffer
	if err := runStatus(context.Background(), statusOptions{src: src, dst: dst, now: now}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	for _, want := range []string{"WARNING: set " + future, "after this host's clock", "max-clock-skew", "dated in the future"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status does not say %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "lags -") {
		t.Errorf("negative lag:\n%s", out.String())
	}
}

// TestVerifyFutureSet: verify and wait refuse (exit 6) a validly signed
// set created further after this host's clock than --max-clock-skew,
// naming the skew; a wider --max-clock-skew accepts it.
func TestVerifyFutureSet(t *testing.T) {
	dir := t.TempDir()
	c := movertest.New(t, dir)
	c.Created = time.Now().Add(time.Hour)
	c.Publish(movertest.Small("a", 2))
	for _, cmd := range []string{"verify", "wait"} {
		_, stderr, code := transfer(t, nil, cmd, "--allowed-signers", c.Allowed, dir)
		if code != 6 || !strings.Contains(stderr, "max-clock-skew") {
			t.Fatalf("%s of a set an hour ahead: exit %d, %s; want 6 naming max-clock-skew", cmd, code, stderr)
		}
		if _, stderr, code := transfer(t, nil, cmd, "--allowed-signers", c.Allowed, "--max-clock-skew", "2h", dir); code != 0 {
			t.Fatalf("%s --max-clock-skew 2h: exit %d, %s", cmd, code, stderr)
		}
	}
}
