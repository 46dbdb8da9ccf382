package manifest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// epochLine trusts k for epoch records only, as a site trusts its own key.
func epochLine(name string, k key) string {
	return name + ` namespaces="` + manifest.EpochNamespace + `" ` + k.Pub
}

func TestVerifyEpoch(t *testing.T) {
	prod := newKey(t, "ed25519")
	bcp := newKey(t, "ed25519")
	other := newKey(t, "ed25519")
	rec := func(epoch uint64, active string) *manifest.EpochRecord {
		return &manifest.EpochRecord{Channel: testChannel, Epoch: epoch, Active: active, Created: created0.Add(time.Hour), Host: "bcp-leader"}
	}
	tests := []struct {
		name      string
		setup     func(t *testing.T, w *world, o *manifest.VerifyOptions)
		want      error  // nil: complete
		names     string // the error or the ignored list must name this
		wantEpoch uint64
	}{
		{"no record: any epoch", func(t *testing.T, w *world, o *manifest.VerifyOptions) {}, nil, "", 0},
		{"late set from the superseded site", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, manifest.WriteEpoch(w.Root, rec(2, "bcp"), bcp.Signer))
		}, manifest.ErrSuperseded, "made in epoch 1, but the channel records epoch 2 (bcp active", 2},
		{"set of the current epoch", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, manifest.WriteEpoch(w.Root, rec(1, "prod"), bcp.Signer))
		}, nil, "", 1},
		{"reader saw a higher epoch (records deleted)", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			o.MinEpoch = 2
		}, manifest.ErrSuperseded, "this reader has seen epoch 2", 2},
		{"record by an untrusted key is ignored", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, manifest.WriteEpoch(w.Root, rec(9, "bcp"), other.Signer))
		}, nil, "not in allowed_signers", 0},
		{"record by a key trusted for manifests only is ignored", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, manifest.WriteEpoch(w.Root, rec(9, "bcp"), prod.Signer))
		}, nil, "namespace", 0},
		{"unsigned record is ignored", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.MkdirAll(filepath.Join(w.Root, "epochs"), 0o750))
			must(t, os.WriteFile(filepath.Join(w.Root, "epochs", manifest.EpochFileName(7)),
				[]byte(`{"channel":{"name":"prod-to-bcp","source":"prod","target":"bcp"},"epoch":7,"active":"bcp","created":"2026-11-25T13:00:00Z","host":"x"}`), 0o640))
		}, nil, "not signed", 0},
		{"edited record is ignored, the signed one below counts", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, manifest.WriteEpoch(w.Root, rec(2, "bcp"), bcp.Signer))
			must(t, manifest.WriteEpoch(w.Root, rec(3, "bcp"), bcp.Signer))
			p := filepath.Join(w.Root, "epochs", manifest.EpochFileName(3))
			data, _ := os.ReadFile(p)
			must(t, os.WriteFile(p, []byte(strings.Replace(string(data), `"active": "bcp"`, `"active": "prod"`, 1)), 0o640))
		}, manifest.ErrSuperseded, "signature", 2},
		{"record renamed to another epoch is ignored", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, manifest.WriteEpoch(w.Root, rec(2, "bcp"), bcp.Signer))
			dir := filepath.Join(w.Root, "epochs")
			for _, s := range []string{"", ".sig"} {
				must(t, os.Rename(filepath.Join(dir, manifest.EpochFileName(2)+s), filepath.Join(dir, manifest.EpochFileName(8)+s)))
			}
		}, nil, "holds epoch 2", 0},
		{"record of another channel is ignored", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			r := rec(2, "bcp")
			r.Channel = manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}
			must(t, manifest.WriteEpoch(w.Root, r, bcp.Signer))
		}, nil, "bcp-to-prod", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newMySQLWorld(t)
			// The set verified is made in epoch 1.
			id := w.publishEpoch(t, 2, 1, prod)
			o := w.opts()
			o.SetID = id
			o.AllowedSigners = allowed(t, allowedLine(prod), epochLine("bcp-backup", bcp))
			o.Now = created0.Add(2 * time.Hour)
			tt.setup(t, w, &o)
			rep, err := manifest.Verify(context.Background(), o)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if tt.want != nil && !errors.Is(err, manifest.ErrStale) {
				t.Fatalf("%v is not ErrStale (exit 6)", err)
			}
			if rep == nil || rep.Epoch != tt.wantEpoch {
				t.Fatalf("report %+v, want epoch %d", rep, tt.wantEpoch)
			}
			text := strings.Join(rep.EpochIgnored, "\n")
			if err != nil {
				text += "\n" + err.Error()
			}
			if !strings.Contains(text, tt.names) {
				t.Fatalf("%q does not name %q", text, tt.names)
			}
		})
	}
}

// newMySQLWorld is a channel holding one object (a MySQL dump): enough for
// a set whose only subject here is its epoch.
func newMySQLWorld(t *testing.T) *world {
	t.Helper()
	root := filepath.Join(t.TempDir(), "prod-to-bcp")
	w := &world{Root: root, Layout: manifest.Layout{Root: root}}
	must(t, manifest.WriteChannel(root, testChannel))
	w.Store = objects.New(w.Layout.ObjectsDir())
	ref, err := w.Store.Put(context.Background(), strings.NewReader("-- dump\n"))
	must(t, err)
	w.Big = ref
	return w
}

// publishEpoch publishes set seq made in epoch.
func (w *world) publishEpoch(t *testing.T, seq, epoch uint64, k key) string {
	t.Helper()
	m := &manifest.Manifest{
		Channel: testChannel, Sequence: seq, Epoch: epoch,
		Created:  created0.Add(time.Duration(seq) * time.Minute),
		Producer: manifest.Producer{Host: "prod-leader", Program: "backup", Version: "test"},
		MySQL: &manifest.MySQLDump{Object: w.Big, Compression: manifest.CompressionNone,
			Databases: []string{"squirro"}, Tables: []manifest.TableCount{{Database: "squirro", Table: "projects", Rows: 3}}},
	}
	id, err := manifest.Publish(context.Background(), w.Layout, m, k.Signer)
	must(t, err)
	return id
}

func TestWriteEpochOnce(t *testing.T) {
	k := newKey(t, "ed25519")
	root := t.TempDir()
	must(t, manifest.WriteChannel(root, testChannel))
	rec := &manifest.EpochRecord{Channel: testChannel, Epoch: 2, Active: "bcp", Created: created0, Host: "h"}
	// A promotion that died before signing left the record unsigned: the
	// next one replaces it.
	must(t, os.MkdirAll(filepath.Join(root, "epochs"), 0o750))
	must(t, os.WriteFile(filepath.Join(root, "epochs", manifest.EpochFileName(2)), []byte("{}"), 0o640))
	must(t, manifest.WriteEpoch(root, rec, k.Signer))
	ce, err := manifest.ReadEpoch(root, testChannel, allowed(t, epochLine("bcp", k)), created0)
	must(t, err)
	if ce.Epoch() != 2 || ce.Record.Active != "bcp" || len(ce.Ignored) != 0 {
		t.Fatalf("ReadEpoch = %+v", ce)
	}
	if err := manifest.WriteEpoch(root, rec, k.Signer); !errors.Is(err, manifest.ErrSetExists) {
		t.Fatalf("second WriteEpoch = %v, want ErrSetExists", err)
	}
	bad := *rec
	bad.Active = "elsewhere"
	if err := manifest.WriteEpoch(root, &bad, k.Signer); !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("WriteEpoch of a site outside the channel = %v, want ErrInvalid", err)
	}
	fi, err := os.Stat(filepath.Join(root, "epochs", manifest.EpochFileName(2)+".sig"))
	must(t, err)
	if fi.Mode().Perm() != manifest.FilePerm {
		t.Fatalf("signature mode %v", fi.Mode().Perm())
	}
}
