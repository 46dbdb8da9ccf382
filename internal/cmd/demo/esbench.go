package main

// make bench-es: replication cycles of a prod cluster holding gigabytes of
// Elasticsearch documents, through the three programs as the demo runs
// them, each restore beside a full restore of the same set (--full: every
// index deleted and restored, as before issue 17) in the same run.
//
// Cycles: first (everything new), one index changed (100 documents added to
// one of the ten), nothing changed. For each: backup run (and the bytes it
// added to the channel's es/), transfer push (bytes that arrived on bcp's
// channel), restore run (whole run and its Elasticsearch stage, indices
// restored and kept, bytes restored = store size of the restored indices,
// peak RSS), then restore run --full --allow-older of the same set.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/es"
)

// benchIndices is the number of large project indices the benchmark adds.
const benchIndices = 10

// vocabulary of the generated documents: enough words that the text does
// not compress to nothing.
var vocabulary = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]string, 5000)
	for i := range out {
		b := make([]byte, 3+r.IntN(8))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		out[i] = string(b)
	}
	return out
}()

// esBench runs the cycles on the configured world; totalBytes of document
// JSON go into the benchmark's indices first.
func (d *demo) esBench(ctx context.Context, totalBytes int64) error {
	names := make([]string, benchIndices)
	for i := range names {
		names[i] = fmt.Sprintf("squirro_v9_project_bench%02d", i)
	}
	if err := d.step(fmt.Sprintf("fill prod with %d indices, %d MB of documents", benchIndices, totalBytes>>20), func() error {
		return d.fillBench(ctx, names, totalBytes)
	}); err != nil {
		return err
	}
	type cycle struct {
		name   string
		change func() error
	}
	cycles := []cycle{
		{"first, everything new", nil},
		{"100 documents added to 1 of 10 indices", func() error { return d.addDocs(names[3], 100) }},
		{"nothing changed", nil},
	}
	var rows []benchRow
	for i, c := range cycles {
		if c.change != nil {
			if err := c.change(); err != nil {
				return err
			}
		}
		row, err := d.benchCycle(c.name, i > 0)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	fmt.Printf("\n==> bench-es: %d indices on prod, %d MB of document JSON; restore beside restore --full of the same set\n", benchIndices, totalBytes>>20)
	fmt.Println("| cycle | backup | es/ bytes added | transfer push | bytes moved | restore (ES stage) | indices restored / kept | bytes restored | restore peak RSS | restore --full (ES stage) | full: bytes restored | ES stage vs full |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		full, ratio := "-", "-"
		if r.full != nil {
			full = fmt.Sprintf("%s (%s)", sec(r.full.total), sec(r.full.es))
			ratio = fmt.Sprintf("%.3f", r.restore.es.Seconds()/r.full.es.Seconds())
		}
		fullBytes := "-"
		if r.full != nil {
			fullBytes = mb(r.full.bytes)
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s (%s) | %d / %d | %s | %d MB | %s | %s | %s |\n", r.name, sec(r.backup), mb(r.snapBytes), sec(r.transfer), mb(r.moved),
			sec(r.restore.total), sec(r.restore.es), r.restore.restored, r.restore.kept, mb(r.restore.bytes), r.restore.rss>>10, full, fullBytes, ratio)
	}
	fmt.Println("\n==> prod and bcp side by side")
	ok, err := d.compare(ctx)
	if err != nil {
		return err
	}
	pc, err := es.CountDocuments(ctx, d.prodES, names)
	if err != nil {
		return err
	}
	bc, err := es.CountDocuments(ctx, d.bcpES, names)
	if err != nil {
		return err
	}
	for _, ix := range names {
		same := "same"
		if pc[ix] != bc[ix] {
			same, ok = "DIFFERENT", false
		}
		fmt.Printf("    documents in %-40s %12d %12d  %s\n", ix, pc[ix], bc[ix], same)
	}
	if !ok {
		return fmt.Errorf("prod and bcp differ after the cycles")
	}
	return nil
}

type restoreFigures struct {
	total, es      time.Duration
	restored, kept int
	bytes, rss     int64
	set            string
}

type benchRow struct {
	name             string
	backup, transfer time.Duration
	snapBytes, moved int64
	restore          restoreFigures
	full             *restoreFigures
}

func sec(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
func mb(n int64) string          { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func (d *demo) benchCycle(name string, withFull bool) (benchRow, error) {
	row := benchRow{name: name}
	fmt.Printf("\n==> cycle: %s\n", name)
	esDir := filepath.Join(d.channel("prod", "prod"), "es")
	before := fileSizes(esDir)
	t := time.Now()
	if err := d.on("prod", os.Stdout, "backup", "run"); err != nil {
		return row, err
	}
	row.backup, row.snapBytes = time.Since(t), added(before, fileSizes(esDir))
	dst := d.channel("bcp", "prod")
	before = fileSizes(dst)
	t = time.Now()
	if err := d.on("prod", os.Stdout, "transfer", "push", d.channel("prod", "prod"), d.sftpURL("bcp", dst)); err != nil {
		return row, err
	}
	row.transfer, row.moved = time.Since(t), added(before, fileSizes(dst))
	var err error
	if row.restore, err = d.benchRestore("restore", "run", "--json"); err != nil {
		return row, err
	}
	if withFull {
		f, err := d.benchRestore("restore", "run", "--json", "--full", "--allow-older", "--set", row.restore.set)
		if err != nil {
			return row, err
		}
		row.full = &f
	}
	return row, nil
}

// benchRestore runs restore on bcp and reads its figures from --json.
func (d *demo) benchRestore(name string, args ...string) (restoreFigures, error) {
	var f restoreFigures
	var out bytes.Buffer
	t := time.Now()
	if err := d.on("bcp", &out, name, args...); err != nil {
		return f, err
	}
	f.total, f.rss = time.Since(t), d.lastRSS
	var p struct {
		Set string `json:"set"`
		ES  struct {
			Restore   []string `json:"restore"`
			Unchanged []string `json:"unchanged"`
		} `json:"elasticsearch"`
		Stages []struct {
			Name       string `json:"name"`
			Start, End time.Time
		} `json:"stages"`
	}
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		return f, fmt.Errorf("restore run --json: %w", err)
	}
	f.set, f.restored, f.kept = p.Set, len(p.ES.Restore), len(p.ES.Unchanged)
	for _, s := range p.Stages {
		if s.Name == "elasticsearch" {
			f.es = s.End.Sub(s.Start)
		}
	}
	var err error
	if f.bytes, err = d.restoredBytes(p.ES.Restore); err != nil {
		return f, err
	}
	fmt.Printf("    restore %s: %s, elasticsearch stage %s, %d indices restored (%s), %d kept, peak RSS %d MB\n",
		strings.Join(args[2:], " "), sec(f.total), sec(f.es), f.restored, mb(f.bytes), f.kept, f.rss>>10)
	return f, nil
}

// restoredBytes is what bcp's last snapshot recovery of each of indices
// read from the repository (_cat/recovery: type snapshot, bytes_total;
// the store size would lag, Elasticsearch refreshes it every 10 s).
func (d *demo) restoredBytes(indices []string) (int64, error) {
	if len(indices) == 0 {
		return 0, nil
	}
	c := d.bcpES.Cat
	resp, err := c.Recovery(c.Recovery.WithIndex(indices...), c.Recovery.WithFormat("json"), c.Recovery.WithBytes("b"),
		c.Recovery.WithH("index", "type", "bytes_total"))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var rows []struct {
		Index string `json:"index"`
		Type  string `json:"type"`
		Bytes int64  `json:"bytes_total,string"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		return 0, fmt.Errorf("recoveries: %w", err)
	}
	var n int64
	for _, r := range rows {
		if r.Type == "snapshot" {
			n += r.Bytes
		}
	}
	return n, nil
}

// fileSizes maps every file below root to its size.
func fileSizes(root string) map[string]int64 {
	out := map[string]int64{}
	_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				out[p] = fi.Size()
			}
		}
		return nil
	})
	return out
}

// added is the size of the files of after that before lacks or that changed size.
func added(before, after map[string]int64) int64 {
	var n int64
	for p, s := range after {
		if b, ok := before[p]; !ok || b != s {
			n += s
		}
	}
	return n
}

// fillBench creates the indices and fills them with totalBytes of
// generated document JSON, evenly.
func (d *demo) fillBench(ctx context.Context, names []string, totalBytes int64) error {
	r := rand.New(rand.NewPCG(3, 4))
	per := totalBytes / int64(len(names))
	for _, ix := range names {
		body := `{"settings":{"number_of_shards":1,"number_of_replicas":0,"refresh_interval":"-1"}}`
		resp, err := d.prodES.Indices.Create(ix, d.prodES.Indices.Create.WithBody(strings.NewReader(body)))
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.IsError() {
			return fmt.Errorf("create %s: %s", ix, resp.Status())
		}
		var done int64
		id := 0
		for done < per {
			var b bytes.Buffer
			for b.Len() < 4<<20 && done+int64(b.Len()) < per {
				fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":"%d"}}`+"\n", ix, id)
				fmt.Fprintf(&b, `{"title":"document %d","body":%q}`+"\n", id, words(r, 150+r.IntN(300)))
				id++
			}
			done += int64(b.Len())
			if err := d.bulk(ctx, &b); err != nil {
				return fmt.Errorf("fill %s: %w", ix, err)
			}
		}
		resp, err = d.prodES.Indices.PutSettings(strings.NewReader(`{"index":{"refresh_interval":null}}`), d.prodES.Indices.PutSettings.WithIndex(ix))
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		fmt.Printf("    index %-28s %8d documents, %d MB of JSON\n", ix, id, done>>20)
	}
	resp, err := d.prodES.Indices.Refresh()
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	return nil
}

func words(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[r.IntN(len(vocabulary))])
	}
	return b.String()
}

// addDocs adds n documents to index ix on prod.
func (d *demo) addDocs(ix string, n int) error {
	r := rand.New(rand.NewPCG(5, 6))
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":"added-%d-%d"}}`+"\n", ix, time.Now().UnixNano(), i)
		fmt.Fprintf(&b, `{"title":"added %d","body":%q}`+"\n", i, words(r, 200))
	}
	return d.bulk(context.Background(), &b)
}

func (d *demo) bulk(ctx context.Context, b *bytes.Buffer) error {
	resp, err := d.prodES.Bulk(b, d.prodES.Bulk.WithContext(ctx), d.prodES.Bulk.WithRefresh("false"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res struct {
		Errors bool `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.IsError() || res.Errors {
		return fmt.Errorf("bulk: %s (errors %v, %v)", resp.Status(), res.Errors, err)
	}
	return nil
}
