package mysqlx

// Restore side of mysqlx (stage 7): stream a dump into the mysql client on
// the standby leader, then check row counts.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"
	"github.com/klauspost/compress/zstd"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// ErrSystemSchema is returned (wrapped) when a set's dump would touch a
// system schema (mysql, information_schema, performance_schema, sys), which
// a restore never does. The load stops before the statement runs.
var ErrSystemSchema = errors.New("dump touches a system schema")

// ErrRowCount is returned (wrapped) when a restored table's row count differs
// from the count the set recorded at dump time.
var ErrRowCount = errors.New("row counts differ from the set")

// SystemSchemas are never dropped, created, or written by a restore.
var SystemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// IsSystemSchema reports whether db is a system schema.
func IsSystemSchema(db string) bool { return slices.Contains(SystemSchemas, strings.ToLower(db)) }

// LoadOptions configures Load.
type LoadOptions struct {
	// Dump is the dump object as stored (compressed as Compression says).
	Dump        io.Reader
	Compression string // "zstd" or "" (plain SQL)
	// Databases are the set's databases: each is dropped before the dump
	// recreates it, so tables prod no longer has do not linger.
	Databases []string
	// Drop are databases the set says are gone from the source: dropped
	// before the load, never loaded.
	Drop []string
	// SSH runs the client on the leader; nil runs it here.
	SSH *sshx.Client
	// Client is the mysql client program; "mysql" when empty.
	Client string
	// DefaultsFile is an option file (on the host that runs the client) with
	// user, password, host/port or socket: the password never appears on a
	// command line.
	DefaultsFile string
}

// LoadStats says what Load did.
type LoadStats struct {
	Bytes int64 // uncompressed SQL bytes sent to the client
}

// Load streams the dump, decompressed, into the mysql client. It first drops
// the set's databases and Drop (never a system schema), and stops with
// ErrSystemSchema if the dump itself switches to or creates a system schema.
func Load(ctx context.Context, opts LoadOptions) (LoadStats, error) {
	var st LoadStats
	for _, db := range opts.Databases {
		if IsSystemSchema(db) {
			return st, fmt.Errorf("%w: the set lists database %q; nothing was loaded", ErrSystemSchema, db)
		}
	}
	for _, db := range opts.Drop {
		if IsSystemSchema(db) {
			return st, fmt.Errorf("%w: asked to drop database %q; nothing was loaded", ErrSystemSchema, db)
		}
	}
	if opts.DefaultsFile == "" {
		return st, errors.New("mysql load: no option file with the credentials configured")
	}
	var src io.Reader = opts.Dump
	switch opts.Compression {
	case "zstd":
		zr, err := zstd.NewReader(opts.Dump)
		if err != nil {
			return st, fmt.Errorf("mysql load: zstd: %w", err)
		}
		defer zr.Close()
		src = zr
	case "", "none":
	default:
		return st, fmt.Errorf("mysql load: unknown compression %q", opts.Compression)
	}
	var pre bytes.Buffer
	pre.WriteString("SET FOREIGN_KEY_CHECKS=0;\n")
	for _, db := range slices.Concat(opts.Databases, opts.Drop) {
		fmt.Fprintf(&pre, "DROP DATABASE IF EXISTS %s;\n", quoteIdent(db))
	}
	g := &guard{br: bufio.NewReaderSize(src, 64<<10)}
	cr := &countingReader{r: io.MultiReader(&pre, g)}
	client := opts.Client
	if client == "" {
		client = "mysql"
	}
	args := []string{"--defaults-extra-file=" + opts.DefaultsFile, "--batch", "--binary-mode", "--default-character-set=utf8mb4"}
	stderr := &limitedBuffer{max: 8192}
	var err error
	where := "local"
	if opts.SSH != nil {
		where = "over ssh on " + opts.SSH.RemoteAddr().String()
		cmd := shellQuote(append([]string{client}, args...))
		err = opts.SSH.Run(ctx, cmd, cr, io.Discard, stderr)
	} else {
		c := exec.CommandContext(ctx, client, args...)
		c.Stdin, c.Stdout, c.Stderr = cr, io.Discard, stderr
		c.Env = os.Environ()
		err = c.Run()
	}
	st.Bytes = cr.n
	if gerr := g.verdict(); gerr != nil {
		return st, gerr
	}
	if err != nil {
		return st, fmt.Errorf("mysql load (%s client %s) after %d bytes: %w: %s", where, client, st.Bytes, err, strings.TrimSpace(stderr.String()))
	}
	return st, nil
}

// CheckRowCounts compares each table's row count with the set's.
func CheckRowCounts(ctx context.Context, db *sql.DB, tables []manifest.TableCount) error {
	var bad []string
	for _, t := range tables {
		var n int64
		q := fmt.Sprintf("SELECT COUNT(*) FROM %s.%s", quoteIdent(t.Database), quoteIdent(t.Table))
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			bad = append(bad, fmt.Sprintf("%s.%s: %v", t.Database, t.Table, err))
			continue
		}
		if n != t.Rows {
			bad = append(bad, fmt.Sprintf("%s.%s has %d rows, the set says %d", t.Database, t.Table, n, t.Rows))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrRowCount, strings.Join(bad, "; "))
	}
	return nil
}

// OptionFileDSN reads the [client] section of a MySQL option file (user,
// password, host, port, socket) and returns a go-sql-driver DSN for it, so
// checks and the mysql client share one credentials file.
func OptionFileDSN(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("mysql option file: %w", err)
	}
	kv := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
			continue
		}
		if section != "client" && section != "mysql" && section != "client-mariadb" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		k = strings.ReplaceAll(strings.TrimSpace(k), "_", "-")
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		kv[k] = v
	}
	cfg := mysql.NewConfig()
	cfg.User = kv["user"]
	cfg.Passwd = kv["password"]
	switch {
	case kv["socket"] != "" && (kv["host"] == "" || kv["host"] == "localhost"):
		cfg.Net, cfg.Addr = "unix", kv["socket"]
	default:
		host := kv["host"]
		if host == "" {
			host = "127.0.0.1"
		}
		port := kv["port"]
		if port == "" {
			port = "3306"
		}
		cfg.Net, cfg.Addr = "tcp", host+":"+port
	}
	return cfg.FormatDSN(), nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// shellQuote quotes each of args for POSIX sh and joins them with spaces.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = sshx.Quote(a)
	}
	return strings.Join(q, " ")
}

// schemaStmt matches statements at the start of a line that name a schema:
// USE db, CREATE/DROP/ALTER DATABASE|SCHEMA [IF [NOT] EXISTS] db.
var schemaStmt = regexp.MustCompile("(?i)^\\s*(?:USE\\s+|(?:CREATE|DROP|ALTER)\\s+(?:DATABASE|SCHEMA)\\s+(?:/\\*!\\d+\\s*)?(?:IF\\s+(?:NOT\\s+)?EXISTS\\s*)?(?:\\*/\\s*)?)`?([^`;\\s]+)`?")

// guard passes the dump through line by line, holding each line back until
// its start is checked: a line that switches to or (re)creates a system
// schema stops the stream with ErrSystemSchema before the client sees it.
type guard struct {
	br      *bufio.Reader
	pending []byte
	midLine bool
	err     error
	mu      sync.Mutex
	bad     error
}

func (g *guard) Read(p []byte) (int, error) {
	for len(g.pending) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		line, err := g.br.ReadSlice('\n')
		if len(line) > 0 {
			if !g.midLine {
				if m := schemaStmt.FindSubmatch(line); m != nil && IsSystemSchema(string(m[1])) {
					g.mu.Lock()
					g.bad = fmt.Errorf("%w: the dump has %q; the load was stopped there (statements before it ran)", ErrSystemSchema, strings.TrimSpace(string(line[:min(len(line), 120)])))
					g.mu.Unlock()
					g.err = g.bad
					return 0, g.err
				}
			}
			g.midLine = line[len(line)-1] != '\n'
			g.pending = line
		}
		if err != nil && err != bufio.ErrBufferFull {
			g.err = err
		}
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

func (g *guard) verdict() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bad
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// limitedBuffer keeps the first max bytes written to it (a client's stderr
// for the error message) and discards the rest.
type limitedBuffer struct {
	max int
	buf bytes.Buffer
	mu  sync.Mutex
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
