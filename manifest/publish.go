package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// Publish makes m a set of the channel at layout.Root: it writes
// sets/<id>/manifest.json, then signs it and writes sets/<id>/manifest.json.sig,
// each to a temporary name, fsynced, linked to its final name without ever
// replacing an existing file, and the directory fsynced (write-order rules
// 2 and 3). The caller MUST have made every object and repository file that
// m references durable before calling Publish.
//
// Publish refuses (ErrNotForUs) a manifest for another channel than the
// directory's channel.json, (ErrStale) a sequence not above every set already
// in the channel, and (ErrSetExists) a set directory that already holds a
// manifest. It checks that the objects m references directly exist.
func Publish(ctx context.Context, layout Layout, m *Manifest, signer ssh.Signer) (string, error) {
	data, err := Encode(m)
	if err != nil {
		return "", err
	}
	ch, err := ReadChannel(layout.Root)
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if ch != m.Channel {
		return "", fmt.Errorf("publish: manifest is for channel %s but %s is channel %s: %w", m.Channel, layout.Root, ch, ErrNotForUs)
	}
	sets, err := List(layout.Root)
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if n := len(sets); n > 0 && sets[n-1].Sequence >= m.Sequence {
		return "", fmt.Errorf("publish: sequence %d is not above the newest set %s of %s: %w", m.Sequence, sets[n-1].ID, layout.Root, ErrStale)
	}
	for _, r := range topRefs(m) {
		fi, err := os.Stat(layout.ObjectPath(r.ref.SHA256))
		if err != nil {
			return "", fmt.Errorf("publish: %s object %s: %w (store every object before publishing)", r.what, r.ref.SHA256, err)
		}
		if fi.Size() != r.ref.Size {
			return "", fmt.Errorf("publish: %s object %s has %d bytes, manifest says %d: %w", r.what, r.ref.SHA256, fi.Size(), r.ref.Size, ErrCorrupt)
		}
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	sig, err := sshsig.Sign(signer, Namespace, bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	id := SetID(m.Sequence, m.Created)
	dir := layout.SetDir(id)
	if err := os.MkdirAll(layout.SetsDir(), DirPerm); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := os.Mkdir(dir, DirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("publish: %w", err)
	} else if err == nil {
		if err := SyncDir(layout.SetsDir()); err != nil {
			return "", fmt.Errorf("publish: %w", err)
		}
	}
	write := func(b []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(b); return err }
	}
	if err := CreateAtomic(layout.ManifestPath(id), FilePerm, write(data)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("publish: %s already holds a manifest; sets are never overwritten: %w", dir, ErrSetExists)
		}
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := CreateAtomic(layout.SignaturePath(id), FilePerm, write(sig)); err != nil {
		return "", fmt.Errorf("publish: manifest written but not its signature (the set does not count until signed): %w", err)
	}
	return id, nil
}

type namedRef struct {
	what string
	ref  Ref
}

// topRefs lists the objects a manifest references directly.
func topRefs(m *Manifest) []namedRef {
	var refs []namedRef
	if m.MySQL != nil {
		refs = append(refs, namedRef{"mysql dump", m.MySQL.Object})
	}
	if m.Elasticsearch != nil {
		refs = append(refs, namedRef{"elasticsearch file list", m.Elasticsearch.Files})
	}
	for _, t := range m.Trees {
		if t.Dir.SHA256 != "" {
			refs = append(refs, namedRef{"tree " + t.Name + " root directory list", t.Dir})
		} else {
			refs = append(refs, namedRef{"tree " + t.Name + " file list", t.List})
		}
	}
	return refs
}

// SetInfo describes one set directory, as found by List without reading or
// checking anything inside it.
type SetInfo struct {
	ID           string
	Sequence     uint64
	HasManifest  bool
	HasSignature bool
}

// List returns the sets of the channel at root sorted by sequence: every
// directory under sets/ named like SetID, with whether its manifest and
// signature files are present. Other names (temporary files, stray
// directories) are skipped. A channel without sets/ has no sets.
func List(root string) ([]SetInfo, error) {
	l := Layout{Root: root}
	ents, err := os.ReadDir(l.SetsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	var sets []SetInfo
	for _, e := range ents {
		seq, err := ParseSetID(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		s := SetInfo{ID: e.Name(), Sequence: seq}
		s.HasManifest = isRegular(l.ManifestPath(s.ID))
		s.HasSignature = isRegular(l.SignaturePath(s.ID))
		sets = append(sets, s)
	}
	slices.SortFunc(sets, func(a, b SetInfo) int {
		switch {
		case a.Sequence < b.Sequence:
			return -1
		case a.Sequence > b.Sequence:
			return 1
		}
		return 0
	})
	return sets, nil
}

func isRegular(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}
