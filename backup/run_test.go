package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync/atomic"
	"testing"

	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

// countingSource counts opens and bytes read: the proof that a second run
// reads no file data.
type countingSource struct {
	filetree.Source
	opens, bytes *atomic.Int64
}

func (c countingSource) Open(name string) (io.ReadCloser, error) {
	c.opens.Add(1)
	rc, err := c.Source.Open(name)
	if err != nil {
		return nil, err
	}
	return countingReader{rc, c.bytes}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func countReads(t testing.TB) (opens, read *atomic.Int64) {
	t.Helper()
	opens, read = new(atomic.Int64), new(atomic.Int64)
	old := captureSeam
	captureSeam = func(s filetree.Source) filetree.Source { return countingSource{s, opens, read} }
	t.Cleanup(func() { captureSeam = old })
	return opens, read
}

func TestRunFullThenIncremental(t *testing.T) {
	w := newWorld(t)
	opens, read := countReads(t)
	first := w.mustRun(t)
	m := first.Manifest
	if m.Sequence != 1 || m.MySQL == nil || len(m.Trees) != 1 || m.Elasticsearch == nil {
		t.Fatalf("manifest = %+v", m)
	}
	counts := map[string]int64{}
	for _, tc := range m.MySQL.Tables {
		counts[tc.Database+"."+tc.Table] = tc.Rows
	}
	if counts["squirro.projects"] != 3 || counts["squirro.empty"] != 0 || len(counts) != 2 {
		t.Errorf("row counts = %v", counts)
	}
	if m.Trees[0].Files != 4 || opens.Load() != 4 {
		t.Errorf("tree %+v, %d files opened", m.Trees[0], opens.Load())
	}
	if m.Elasticsearch.Indices[0] != w.index || m.Elasticsearch.State != "SUCCESS" {
		t.Errorf("es = %+v", m.Elasticsearch)
	}

	// Nothing changed: no file is opened, the tree list is the same object.
	opens.Store(0)
	read.Store(0)
	second := w.mustRun(t)
	if opens.Load() != 0 || read.Load() != 0 {
		t.Fatalf("second run opened %d files and read %d bytes; want none", opens.Load(), read.Load())
	}
	if second.Manifest.Sequence != 2 || second.Manifest.Trees[0] != m.Trees[0] {
		t.Errorf("second set: seq %d, tree %+v (first %+v)", second.Manifest.Sequence, second.Manifest.Trees[0], m.Trees[0])
	}

	// backup list --json shows both, signed.
	var out bytes.Buffer
	if err := runList(context.Background(), listOptions{channel: w.channel, allowedSigners: w.allowed, json: true}, &out); err != nil {
		t.Fatal(err)
	}
	var rows []setRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].ID != second.SetID || rows[1].Status != manifest.StatusComplete.String() {
		t.Errorf("list = %s", out.String())
	}
}

// TestRunOverSSH dumps MySQL and reads the storage tree on the "leader"
// over SSH/SFTP (a real sshd on loopback, host key checked).
func TestRunOverSSH(t *testing.T) {
	w := newWorld(t)
	s := testenv.SSHD(t)
	w.cfg.SSH = s.Config()
	w.cfg.MySQLViaSSH, w.cfg.FilesViaSSH = true, true
	opens, _ := countReads(t)
	res := w.mustRun(t)
	if res.Manifest.Trees[0].Files != 4 || opens.Load() != 4 || len(res.Manifest.MySQL.Tables) != 2 {
		t.Fatalf("over ssh: trees %+v, %d opens, tables %v", res.Manifest.Trees, opens.Load(), res.Manifest.MySQL.Tables)
	}
	opens.Store(0)
	w.mustRun(t)
	if opens.Load() != 0 {
		t.Fatalf("second run over SFTP opened %d files", opens.Load())
	}
}
