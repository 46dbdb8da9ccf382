package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/elastic/go-elasticsearch/v7"
	_ "github.com/go-sql-driver/mysql"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

func main() {
	os.Exit(run())
}

// timing is one measured step of the demo.
type timing struct {
	what string
	d    time.Duration
}

type demo struct {
	root      string // repository root
	dir       string // the world's directory
	w         *testenv.World
	info      testenv.WorldInfo
	timings   []timing
	prodES    *elasticsearch.Client
	bcpES     *elasticsearch.Client
	prodDB    *sql.DB
	bcpDB     *sql.DB
	health    *http.Server
	healthURL string
	runbook   string            // -drill: the runbook to run
	memory    map[string]string // -drill: a site's state remembered
	writes    int               // -drill: write steps so far
	// benchBytes > 0: make bench-es (esbench.go) with this much document
	// JSON instead of the demo's one cycle.
	benchBytes int64
	lastRSS    int64 // peak RSS (KiB) of the last program d.on ran
}

func run() int {
	keep := flag.Bool("keep", false, "keep the world's directory (logs, configs, channels) after the demo")
	docs := flag.Int("docs", 5000, "documents in the largest sample index")
	files := flag.Int("files", 300, "files in the sample storage tree")
	drill := flag.String("drill", "", "instead of one cycle, run this runbook's commands (make drill: doc/runbook.md): failover and failback")
	benchMB := flag.Int64("es-bench-mb", 0, "make bench-es: fill prod with this many MB of documents in 10 indices and time replication cycles (esbench.go)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{runbook: *drill, benchBytes: *benchMB << 20}
	err := d.main(ctx, *docs, *files, *keep)
	name := "demo"
	if d.runbook != "" {
		name = "drill"
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\n%s: FAILED: %v\n", name, err)
		return 1
	}
	if d.runbook != "" {
		fmt.Printf("\ndrill: OK - every command of %s ran as written, with the exit code it names, and the sites were equal at every check\n", d.runbook)
		return 0
	}
	fmt.Println("\ndemo: OK - bcp holds the same data as prod")
	return 0
}

func (d *demo) step(what string, f func() error) error {
	fmt.Printf("\n==> %s\n", what)
	start := time.Now()
	err := f()
	el := time.Since(start)
	d.timings = append(d.timings, timing{what, el})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Printf("    (%s)\n", el.Round(time.Millisecond))
	return nil
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the current directory: run the demo from the repository (make demo)")
		}
		dir = parent
	}
}

func (d *demo) main(ctx context.Context, nDocs, nFiles int, keep bool) (err error) {
	d.root, err = findRoot()
	if err != nil {
		return err
	}
	total := time.Now()
	if err := d.step("build bin/backup, bin/transfer, bin/restore", d.build); err != nil {
		return err
	}
	d.dir, err = os.MkdirTemp("", "bcp-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if keep || err != nil {
			fmt.Printf("world directory kept: %s (configs, logs, channels)\n", d.dir)
			return
		}
		_ = os.RemoveAll(d.dir)
	}()
	if err := d.step("start the two-site world (prod and bcp: Elasticsearch 7.17, MariaDB, Redis, sshd each)", func() error {
		w, err := testenv.StartWorld(ctx, filepath.Join(d.dir, "world"), testenv.StartOptions{})
		if err != nil {
			return err
		}
		d.w = w
		d.info, err = w.Info()
		return err
	}); err != nil {
		return err
	}
	defer func() {
		fmt.Println("\n==> stopping everything the demo started")
		d.w.Stop()
		if d.health != nil {
			_ = d.health.Close()
		}
	}()
	if err := d.clients(); err != nil {
		return err
	}
	if err := d.step(fmt.Sprintf("fill prod with sample data (%d+ documents, 2 schemas, %d files, a config directory)", nDocs, nFiles), func() error {
		return d.fill(ctx, nDocs, nFiles)
	}); err != nil {
		return err
	}
	if err := d.configure(); err != nil {
		return err
	}
	if d.runbook != "" {
		return d.drill(ctx, total)
	}
	if err := d.step("backup init on both sites: both channels on each site's NFS, and every day-one check", func() error {
		if err := d.on("prod", os.Stdout, "backup", "init", "--target", "bcp"); err != nil {
			return err
		}
		return d.on("bcp", os.Stdout, "backup", "init", "--target", "prod")
	}); err != nil {
		return err
	}
	if d.benchBytes > 0 {
		return d.esBench(ctx, d.benchBytes)
	}
	cycle := time.Now()
	if err := d.step("backup run (prod): preflight, ES snapshot, mysqldump, file capture, signed publish", func() error {
		return d.on("prod", os.Stdout, "backup", "run")
	}); err != nil {
		return err
	}
	if err := d.step("transfer push (prod channel -> bcp NFS over SFTP)", func() error {
		return d.on("prod", os.Stdout, "transfer", "push", d.channel("prod", "prod"), d.sftpURL("bcp", d.channel("bcp", "prod")))
	}); err != nil {
		return err
	}
	var out bytes.Buffer
	if err := d.step("restore run (bcp): verify, then stages 6-11", func() error {
		return d.on("bcp", &out, "restore", "run", "--json")
	}); err != nil {
		return err
	}
	cycleTime := time.Since(cycle)
	var p struct {
		Stages []struct {
			Name    string    `json:"name"`
			Start   time.Time `json:"start"`
			End     time.Time `json:"end"`
			Outcome string    `json:"outcome"`
			Detail  string    `json:"detail"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		return fmt.Errorf("restore run --json: %w", err)
	}
	fmt.Println("\n==> bcp restore stages")
	for _, s := range p.Stages {
		fmt.Printf("    %-14s %-8s %9s  %s\n", s.Name, s.Outcome, s.End.Sub(s.Start).Round(time.Millisecond), s.Detail)
	}
	fmt.Println("\n==> prod and bcp side by side")
	ok, err := d.compare(ctx)
	if err != nil {
		return err
	}
	fmt.Println("\n==> times")
	for _, t := range d.timings {
		fmt.Printf("    %9s  %s\n", t.d.Round(time.Millisecond), t.what)
	}
	fmt.Printf("    %9s  the replication cycle (backup + transfer + restore)\n", cycleTime.Round(time.Millisecond))
	fmt.Printf("    %9s  the whole demo\n", time.Since(total).Round(time.Millisecond))
	if !ok {
		return errors.New("prod and bcp differ (see the table above)")
	}
	return nil
}

func (d *demo) path(name string) string { return filepath.Join(d.dir, name) }

func (d *demo) build() error {
	for _, p := range []string{"backup", "transfer", "restore"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(d.root, "bin", p), ".")
		cmd.Dir = filepath.Join(d.root, p)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", p, err)
		}
	}
	return nil
}

// on runs bin/<name> with args on site (its config files, see sites.go),
// its stdout to stdout and its log lines indented.
func (d *demo) on(site string, stdout io.Writer, name string, args ...string) error {
	fmt.Printf("    %s$ %s %s\n", site, name, strings.Join(args, " "))
	cmd := exec.Command(filepath.Join(d.root, "bin", name), args...)
	cmd.Env = d.siteEnv(site)
	cmd.Stdout = stdout
	cmd.Stderr = indent{os.Stderr}
	err := cmd.Run()
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			d.lastRSS = ru.Maxrss
		}
	}
	if err != nil {
		return fmt.Errorf("%s$ %s %s: %w", site, name, args[0], err)
	}
	return nil
}

// indent prefixes a child's log lines so the demo's own lines stand out.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	s := strings.TrimRight(string(p), "\n")
	_, err := fmt.Fprintln(i.w, "      | "+strings.ReplaceAll(s, "\n", "\n      | "))
	return len(p), err
}

func (d *demo) clients() error {
	var err error
	if d.prodES, err = d.w.Prod.ES.NewClient(); err != nil {
		return err
	}
	if d.bcpES, err = d.w.BCP.ES.NewClient(); err != nil {
		return err
	}
	if d.prodDB, err = sql.Open("mysql", d.w.Prod.MariaDB.DSN("")); err != nil {
		return err
	}
	d.bcpDB, err = sql.Open("mysql", d.w.BCP.MariaDB.DSN(""))
	return err
}

// ---- sample data ----

var indices = []struct {
	name   string
	shards int
	share  int // of nDocs, in percent
}{{"squirro_v9_project_news", 2, 100}, {"squirro_v9_project_legal", 1, 40}, {"squirro_v9_project_hr", 1, 10}}

func (d *demo) fill(ctx context.Context, nDocs, nFiles int) error {
	for _, ix := range indices {
		body := fmt.Sprintf(`{"settings":{"number_of_shards":%d,"number_of_replicas":0}}`, ix.shards)
		resp, err := d.prodES.Indices.Create(ix.name, d.prodES.Indices.Create.WithBody(strings.NewReader(body)))
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		n := nDocs * ix.share / 100
		for off := 0; off < n; off += 1000 {
			var b bytes.Buffer
			for i := off; i < min(n, off+1000); i++ {
				fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":"%d"}}`+"\n", ix.name, i)
				fmt.Fprintf(&b, `{"title":"document %d of %s","body":%q}`+"\n", i, ix.name, strings.Repeat("lorem ipsum ", 1+i%20))
			}
			resp, err := d.prodES.Bulk(&b, d.prodES.Bulk.WithRefresh("true"))
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.IsError() {
				return fmt.Errorf("bulk into %s: %s", ix.name, resp.Status())
			}
		}
		fmt.Printf("    index %-28s %6d documents\n", ix.name, n)
	}
	stmts := []string{
		"CREATE DATABASE squirro_configuration",
		"CREATE TABLE squirro_configuration.projects (id INT PRIMARY KEY, name VARCHAR(100), created DATETIME)",
		"CREATE TABLE squirro_configuration.users (id INT PRIMARY KEY, email VARCHAR(100), role VARCHAR(20))",
		"CREATE DATABASE squirro_topic",
		"CREATE TABLE squirro_topic.items (id INT PRIMARY KEY AUTO_INCREMENT, project_id INT, title TEXT)",
	}
	for _, s := range stmts {
		if _, err := d.prodDB.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	for i, ix := range indices {
		if _, err := d.prodDB.ExecContext(ctx, "INSERT INTO squirro_configuration.projects VALUES (?, ?, NOW())", i+1, ix.name); err != nil {
			return err
		}
	}
	for i := 1; i <= 50; i++ {
		if _, err := d.prodDB.ExecContext(ctx, "INSERT INTO squirro_configuration.users VALUES (?, ?, ?)", i, fmt.Sprintf("user%d@example.com", i), []string{"admin", "user", "viewer"}[i%3]); err != nil {
			return err
		}
	}
	for i := 0; i < 20; i++ {
		var b strings.Builder
		b.WriteString("INSERT INTO squirro_topic.items (project_id, title) VALUES ")
		for j := 0; j < 100; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "(%d, 'item %d')", 1+j%3, i*100+j)
		}
		if _, err := d.prodDB.ExecContext(ctx, b.String()); err != nil {
			return err
		}
	}
	fmt.Println("    mysql squirro_configuration (projects, users), squirro_topic (items: 2000 rows)")
	storage, config := d.path("prod-storage"), d.path("prod-etc-squirro")
	var bytesTotal int64
	for i := 0; i < nFiles; i++ {
		n, _ := rand.Int(rand.Reader, big.NewInt(64<<10))
		b := make([]byte, n.Int64()+1)
		_, _ = rand.Read(b)
		p := filepath.Join(storage, fmt.Sprintf("project%d/binary/%02x/doc-%04d.pdf", i%3+1, i%16, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			return err
		}
		bytesTotal += int64(len(b))
	}
	for _, p := range []string{"assets/custom.css", "pipelets/enrich.py"} {
		full := filepath.Join(storage, p)
		_ = os.MkdirAll(filepath.Dir(full), 0o750)
		if err := os.WriteFile(full, []byte("/* "+p+" */\n"), 0o644); err != nil {
			return err
		}
	}
	for _, name := range []string{"common.ini", "frontend.ini", "topic.ini"} {
		_ = os.MkdirAll(config, 0o750)
		if err := os.WriteFile(filepath.Join(config, name), []byte("[DEFAULT]\n# "+name+"\nlog_level = info\n"), 0o640); err != nil {
			return err
		}
	}
	fmt.Printf("    storage: %d files, %d bytes; config: 3 .ini files\n", nFiles+2, bytesTotal)
	return nil
}

// ---- comparing the two sites ----

func (d *demo) compare(ctx context.Context) (bool, error) {
	ok := true
	row := func(what, prod, bcp string) {
		mark := "same"
		if prod != bcp {
			mark, ok = "DIFFERENT", false
		}
		fmt.Printf("    %-44s %22s %22s  %s\n", what, prod, bcp, mark)
	}
	fmt.Printf("    %-44s %22s %22s\n", "", "prod", "bcp")
	var names []string
	for _, ix := range indices {
		names = append(names, ix.name)
	}
	pc, err := es.CountDocuments(ctx, d.prodES, names)
	if err != nil {
		return false, err
	}
	bc, err := es.CountDocuments(ctx, d.bcpES, names)
	if err != nil {
		return false, fmt.Errorf("bcp: %w", err)
	}
	for _, n := range names {
		row("documents in "+n, fmt.Sprint(pc[n]), fmt.Sprint(bc[n]))
	}
	pt, err := tables(ctx, d.prodDB)
	if err != nil {
		return false, err
	}
	bt, err := tables(ctx, d.bcpDB)
	if err != nil {
		return false, err
	}
	for _, k := range sortedKeys(pt, bt) {
		row("rows in "+k, pt[k][0], bt[k][0])
		row("  CHECKSUM TABLE", pt[k][1], bt[k][1])
	}
	for _, tr := range []struct{ name, prod, bcp string }{
		{"storage", d.path("prod-storage"), d.path("bcp-storage")},
		{"config", d.path("prod-etc-squirro"), d.path("bcp-etc-squirro")},
	} {
		pf, err := hashTree(tr.prod)
		if err != nil {
			return false, err
		}
		bf, err := hashTree(tr.bcp)
		if err != nil {
			return false, err
		}
		same, diff := 0, 0
		for _, k := range sortedKeys(pf, bf) {
			if pf[k] == bf[k] {
				same++
			} else {
				diff++
				if diff <= 10 {
					row("  "+tr.name+"/"+k, short(pf[k]), short(bf[k]))
				}
			}
		}
		row(fmt.Sprintf("files in %s (path + SHA-256 each)", tr.name), fmt.Sprintf("%d files", len(pf)), fmt.Sprintf("%d files", len(bf)))
		row(fmt.Sprintf("  %s files with equal SHA-256", tr.name), fmt.Sprint(len(pf)), fmt.Sprint(same))
		keys := sortedKeys(pf, nil)
		for i, k := range keys {
			if i == 3 {
				fmt.Printf("    %-44s (%d more, all compared)\n", "  ...", len(keys)-3)
				break
			}
			row("  "+k, short(pf[k]), short(bf[k]))
		}
	}
	if b, err := os.ReadFile(d.path("restarts.log")); err == nil {
		fmt.Printf("    restarts on bcp nodes: %d (%s)\n", strings.Count(string(b), "\n"), d.path("restarts.log"))
	}
	return ok, nil
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	if s == "" {
		return "(missing)"
	}
	return s
}

func sortedKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// tables maps db.table -> [rows, checksum] for the sample schemas.
func tables(ctx context.Context, db *sql.DB) (map[string][2]string, error) {
	out := map[string][2]string{}
	rows, err := db.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('squirro_configuration','squirro_topic') ORDER BY 1, 2")
	if err != nil {
		return nil, err
	}
	var names [][2]string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			_ = rows.Close()
			return nil, err
		}
		names = append(names, [2]string{s, t})
	}
	_ = rows.Close()
	for _, n := range names {
		var cnt int64
		q := fmt.Sprintf("`%s`.`%s`", n[0], n[1])
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+q).Scan(&cnt); err != nil {
			return nil, err
		}
		var name string
		var sum sql.NullInt64
		if err := db.QueryRowContext(ctx, "CHECKSUM TABLE "+q).Scan(&name, &sum); err != nil {
			return nil, err
		}
		out[n[0]+"."+n[1]] = [2]string{fmt.Sprint(cnt), fmt.Sprint(sum.Int64)}
	}
	return out, nil
}

// hashTree maps each file's relative path to its SHA-256 (symlinks to their target).
func hashTree(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if de.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if filetree.Excluded(filepath.ToSlash(rel), nil) {
			return nil
		}
		if de.Type()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	return out, err
}
