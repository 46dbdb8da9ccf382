package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v7"

	"github.com/squirro-bcp/bcp/internal/es"
)

// The drill (make drill) runs a runbook, doc/runbook.md, on the two-site
// world: every line of a fenced code block that starts with "prod$ " or
// "bcp$ " is run on that site exactly as written, except that the site's
// NFS mount (/mnt/bcp) and the other site's SFTP address
// (sftp://prod@prod-nfs:22, sftp://bcp@bcp-nfs:22) are the world's; a
// trailing "# exit N" is the exit code it must end with (default 0).
// Between them, HTML comments tell the drill what users and checks do:
//
//	<!-- drill: write SITE -->      users write on SITE: documents, rows, files, config
//	<!-- drill: same -->            prod and bcp hold the same data: documents per index,
//	                                rows and CHECKSUM TABLE per table, every file's SHA-256
//	<!-- drill: remember SITE -->   note what SITE holds now
//	<!-- drill: unchanged SITE -->  SITE still holds what was noted
//
// So the runbook cannot say a command the drill does not run.

var (
	drillLine    = regexp.MustCompile(`^(prod|bcp)\$ (.+)$`)
	drillExit    = regexp.MustCompile(`#\s*exit (\d+)`)
	drillComment = regexp.MustCompile(`^<!-- drill: (.+) -->$`)
)

func (d *demo) drill(ctx context.Context, total time.Time) error {
	f, err := os.Open(d.runbook)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inBlock, n, commands, checks := false, 0, 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		where := fmt.Sprintf("%s:%d", filepath.Base(d.runbook), n)
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			m := drillLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			commands++
			if err := d.drillCommand(m[1], m[2], where); err != nil {
				return err
			}
			continue
		}
		if m := drillComment.FindStringSubmatch(line); m != nil {
			checks++
			if err := d.drillAction(ctx, strings.Fields(m[1]), where); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if commands == 0 {
		return fmt.Errorf("%s holds no command (lines \"prod$ ...\" or \"bcp$ ...\" in code blocks)", d.runbook)
	}
	fmt.Printf("\n==> %d commands and %d checks of %s in %s\n", commands, checks, d.runbook, time.Since(total).Round(time.Second))
	return nil
}

// drillCommand runs one runbook line on site and checks its exit code.
func (d *demo) drillCommand(site, text, where string) error {
	want := 0
	if m := drillExit.FindStringSubmatch(text); m != nil {
		want, _ = strconv.Atoi(m[1])
	}
	if i := strings.Index(text, "#"); i >= 0 {
		text = strings.TrimSpace(text[:i])
	}
	for _, s := range sites {
		nfs := d.info.Sites[s].NFS
		text = strings.ReplaceAll(text, fmt.Sprintf("sftp://%s@%s-nfs:22/mnt/bcp", s, s), d.sftpURL(s, nfs))
	}
	text = strings.ReplaceAll(text, "/mnt/bcp", d.info.Sites[site].NFS)
	args := strings.Fields(text)
	switch args[0] {
	case "backup", "transfer", "restore":
	default:
		return fmt.Errorf("%s: %q is not one of the programs; the drill runs every command it shows", where, args[0])
	}
	fmt.Printf("\n==> %s\n", where)
	start := time.Now()
	err := d.on(site, os.Stdout, args[0], args[1:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		return err
	}
	d.timings = append(d.timings, timing{site + "$ " + text, time.Since(start)})
	if got != want {
		return fmt.Errorf("%s: %s$ %s exited %d, the runbook says %d", where, site, text, got, want)
	}
	fmt.Printf("    exit %d as the runbook says (%s)\n", got, time.Since(start).Round(time.Millisecond))
	return nil
}

func (d *demo) drillAction(ctx context.Context, a []string, where string) error {
	site := ""
	if len(a) > 1 {
		site = a[1]
		if _, ok := d.info.Sites[site]; !ok {
			return fmt.Errorf("unknown site %q", site)
		}
	}
	switch {
	case a[0] == "write" && site != "":
		d.writes++
		fmt.Printf("\n==> %s: users write on %s\n", where, site)
		return d.write(ctx, site, d.writes)
	case a[0] == "same" && len(a) == 1:
		fmt.Printf("\n==> %s: prod and bcp hold the same data?\n", where)
		p, err := d.state(ctx, "prod")
		if err != nil {
			return err
		}
		b, err := d.state(ctx, "bcp")
		if err != nil {
			return err
		}
		return sameState("prod", p, "bcp", b)
	case a[0] == "remember" && site != "":
		s, err := d.state(ctx, site)
		d.memory = s
		fmt.Printf("\n==> %s: noted what %s holds (%d items)\n", where, site, len(s))
		return err
	case a[0] == "unchanged" && site != "":
		fmt.Printf("\n==> %s: %s still holds what was noted?\n", where, site)
		if d.memory == nil {
			return errors.New("unchanged: nothing remembered")
		}
		s, err := d.state(ctx, site)
		if err != nil {
			return err
		}
		return sameState("noted "+site, d.memory, site+" now", s)
	}
	return fmt.Errorf("unknown drill action %q (write SITE, same, remember SITE, unchanged SITE)", strings.Join(a, " "))
}

func (d *demo) siteClients(site string) (*elasticsearch.Client, *sql.DB) {
	if site == "prod" {
		return d.prodES, d.prodDB
	}
	return d.bcpES, d.bcpDB
}

// write is what users do on site between two steps: new documents, rows
// and a changed row, a new file and a changed config file.
func (d *demo) write(ctx context.Context, site string, n int) error {
	c, db := d.siteClients(site)
	var b bytes.Buffer
	ix := indices[0].name
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":"%s-%d-%d"}}`+"\n", ix, site, n, i)
		fmt.Fprintf(&b, `{"title":"written on %s, step %d","body":"document %d"}`+"\n", site, n, i)
	}
	resp, err := c.Bulk(&b, c.Bulk.WithRefresh("true"), c.Bulk.WithContext(ctx))
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.IsError() {
		return fmt.Errorf("bulk on %s: %s", site, resp.Status())
	}
	for _, q := range []string{
		fmt.Sprintf("INSERT INTO squirro_topic.items (project_id, title) VALUES (1, 'on %s, step %d'), (2, 'on %s, step %d')", site, n, site, n),
		fmt.Sprintf("UPDATE squirro_configuration.users SET role = 'admin-%d' WHERE id = %d", n, n),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s on %s: %w", q, site, err)
		}
	}
	data := make([]byte, 4096+n)
	_, _ = rand.Read(data)
	p := filepath.Join(d.path(site+"-storage"), "project1", fmt.Sprintf("written-on-%s-%d.pdf", site, n))
	if err := os.WriteFile(p, data, 0o640); err != nil {
		return err
	}
	ini, err := os.OpenFile(filepath.Join(d.path(site+"-etc-squirro"), "common.ini"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(ini, "# changed on %s, step %d\n", site, n)
	if cerr := ini.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("    100 documents into %s, 2 rows into squirro_topic.items, 1 user changed, %s, common.ini changed\n", ix, filepath.Base(p))
	return nil
}

// state is what site holds: documents per index, rows and CHECKSUM TABLE
// per table, every file's SHA-256.
func (d *demo) state(ctx context.Context, site string) (map[string]string, error) {
	c, db := d.siteClients(site)
	out := map[string]string{}
	var names []string
	for _, ix := range indices {
		names = append(names, ix.name)
	}
	counts, err := es.CountDocuments(ctx, c, names)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", site, err)
	}
	for _, n := range names {
		out["documents in "+n] = fmt.Sprint(counts[n])
	}
	t, err := tables(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", site, err)
	}
	for k, v := range t {
		out["rows in "+k] = v[0]
		out["CHECKSUM TABLE "+k] = v[1]
	}
	for _, tr := range []string{"storage", "etc-squirro"} {
		h, err := hashTree(d.path(site + "-" + tr))
		if err != nil {
			return nil, err
		}
		for k, v := range h {
			out[tr+"/"+k] = v
		}
	}
	return out, nil
}

// sameState compares two states and says so in a few lines.
func sameState(an string, a map[string]string, bn string, b map[string]string) error {
	var docs, rows, files int
	var diff []string
	for _, k := range sortedKeys(a, b) {
		if a[k] != b[k] {
			diff = append(diff, fmt.Sprintf("    %-56s %s: %-18s %s: %s", k, an, short(a[k]), bn, short(b[k])))
			continue
		}
		switch {
		case strings.HasPrefix(k, "documents in "):
			n, _ := strconv.Atoi(a[k])
			docs += n
		case strings.HasPrefix(k, "rows in "):
			n, _ := strconv.Atoi(a[k])
			rows += n
		case strings.HasPrefix(k, "CHECKSUM"):
		default:
			files++
		}
	}
	if len(diff) > 0 {
		fmt.Println(strings.Join(diff[:min(len(diff), 20)], "\n"))
		return fmt.Errorf("%s and %s differ in %d item(s)", an, bn, len(diff))
	}
	fmt.Printf("    same: %d documents in %d indices, %d rows (CHECKSUM TABLE equal) in %d tables, %d files (SHA-256 equal)\n",
		docs, len(indices), rows, countPrefix(a, "rows in "), files)
	return nil
}

func countPrefix(m map[string]string, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}
