package mysqlx

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

var (
	// ErrConnect: the server did not answer or refused the credentials.
	ErrConnect = errors.New("mysql connection failed")
	// ErrDump: mysqldump failed.
	ErrDump = errors.New("mysqldump failed")
)

// Options say how to reach the server and where the client programs run.
type Options struct {
	Host   string // TCP host (as seen from where the client runs); empty with Socket
	Port   int    // 3306 when zero
	Socket string // unix socket instead of TCP
	User   string
	// PasswordFile is a local file holding the password (first line).
	PasswordFile string
	// Password is used when PasswordFile is empty (tests, env of the child).
	Password string
	// DefaultsFile is an existing option file on the host that runs the
	// client programs; it replaces the generated one.
	DefaultsFile string
	// SSH runs the client programs on that host (the leader) when non-nil.
	SSH *sshx.Config
	// Mysqldump and Mysql are the client program names ("mysqldump", "mysql").
	Mysqldump string
	Mysql     string
	Timeout   time.Duration
}

func (o Options) addr() string {
	if o.Socket != "" {
		return o.Socket
	}
	p := o.Port
	if p == 0 {
		p = 3306
	}
	return net.JoinHostPort(o.Host, strconv.Itoa(p))
}

func (o Options) password() (string, error) {
	if o.PasswordFile == "" {
		return o.Password, nil
	}
	b, err := os.ReadFile(o.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("mysql: read password file: %w", err)
	}
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, "\r"), nil
}

// Open connects with go-sql-driver/mysql (TCP or socket, from this host)
// and pings.
func Open(ctx context.Context, o Options) (*sql.DB, error) {
	pw, err := o.password()
	if err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = o.User, pw
	if o.Socket != "" {
		cfg.Net, cfg.Addr = "unix", o.Socket
	} else {
		cfg.Net, cfg.Addr = "tcp", o.addr()
	}
	cfg.Timeout = 10 * time.Second
	cfg.ParseTime = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("mysql at %s as %s: %w: %v (check the server is up and the user/password)", o.addr(), o.User, ErrConnect, err)
	}
	return db, nil
}

// ReadOnly returns @@read_only (a leader is writable: 0).
func ReadOnly(ctx context.Context, db *sql.DB) (bool, error) {
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		return false, err
	}
	return ro != 0, nil
}

// Databases lists the non-system databases.
func Databases(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT schema_name FROM information_schema.schemata")
	if err != nil {
		return nil, fmt.Errorf("mysql: list databases: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if !IsSystemSchema(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, rows.Err()
}

// Tables lists the base tables of dbs.
func Tables(ctx context.Context, db *sql.DB, dbs []string) ([]manifest.TableCount, error) {
	if len(dbs) == 0 {
		return nil, nil
	}
	q := "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN (?" + strings.Repeat(",?", len(dbs)-1) + ") ORDER BY table_schema, table_name"
	args := make([]any, len(dbs))
	for i, d := range dbs {
		args[i] = d
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("mysql: list tables: %w", err)
	}
	defer rows.Close()
	var out []manifest.TableCount
	for rows.Next() {
		var t manifest.TableCount
		if err := rows.Scan(&t.Database, &t.Table); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CountRows counts the rows of each table with SELECT COUNT(*) (restore's
// post-check uses it).
func CountRows(ctx context.Context, db *sql.DB, tables []manifest.TableCount) ([]manifest.TableCount, error) {
	out := make([]manifest.TableCount, len(tables))
	for i, t := range tables {
		out[i] = t
		q := "SELECT COUNT(*) FROM " + quoteIdent(t.Database) + "." + quoteIdent(t.Table)
		if err := db.QueryRowContext(ctx, q).Scan(&out[i].Rows); err != nil {
			return nil, fmt.Errorf("mysql: count %s.%s: %w", t.Database, t.Table, err)
		}
	}
	return out, nil
}

// optionFile is the [client] option file content for o.
func (o Options) optionFile() ([]byte, error) {
	pw, err := o.password()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("[client]\n")
	kv := func(k, v string) {
		if v != "" {
			// Option file values may be quoted; escape backslash and quote.
			v = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v)
			fmt.Fprintf(&b, "%s=\"%s\"\n", k, v)
		}
	}
	kv("user", o.User)
	kv("password", pw)
	if o.Socket != "" {
		kv("socket", o.Socket)
		kv("protocol", "socket")
	} else if o.Host != "" {
		kv("host", o.Host)
		p := o.Port
		if p == 0 {
			p = 3306
		}
		kv("port", strconv.Itoa(p))
		kv("protocol", "tcp")
	}
	return b.Bytes(), nil
}

// shq quotes s for POSIX sh.
// RunClient runs program (mysqldump or mysql) with args after the option
// file, locally or over SSH, with stdin/stdout. stderr is captured and put
// into the error.
func (o Options) RunClient(ctx context.Context, program string, args []string, stdin io.Reader, stdout io.Writer) error {
	errw := &limitedBuffer{max: 64 << 10}
	if o.SSH != nil {
		return o.runRemote(ctx, program, args, stdin, stdout, errw)
	}
	defaults := o.DefaultsFile
	if defaults == "" {
		content, err := o.optionFile()
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "bcp-mysql-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		defaults = filepath.Join(dir, "client.cnf")
		if err := os.WriteFile(defaults, content, 0o600); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, program, append([]string{"--defaults-extra-file=" + defaults}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, errw
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %v: %s", program, err, strings.TrimSpace(errw.String()))
	}
	return nil
}

func (o Options) runRemote(ctx context.Context, program string, args []string, stdin io.Reader, stdout io.Writer, stderr *limitedBuffer) error {
	c, err := sshx.Dial(ctx, *o.SSH)
	if err != nil {
		return err
	}
	defer c.Close()
	var cmdline string
	var in io.Reader
	if o.DefaultsFile != "" {
		cmdline = sshx.Quote(program) + " --defaults-extra-file=" + sshx.Quote(o.DefaultsFile) + " " + shellQuote(args)
		in = stdin
	} else {
		content, err := o.optionFile()
		if err != nil {
			return err
		}
		// The option file travels on stdin, never on a command line; dd
		// reads exactly its bytes, so data that follows (mysql's input) is
		// left for the client.
		cmdline = fmt.Sprintf(`umask 077; f=$(mktemp) || exit 111; trap 'rm -f "$f"' EXIT; dd bs=1 count=%d of="$f" 2>/dev/null || exit 111; %s --defaults-extra-file="$f" %s`,
			len(content), sshx.Quote(program), shellQuote(args))
		if stdin == nil {
			stdin = strings.NewReader("")
		}
		in = io.MultiReader(bytes.NewReader(content), stdin)
	}
	cmdline = "sh -c " + sshx.Quote(cmdline)
	if err := c.Run(ctx, cmdline, in, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s on %s: %v: %s", program, o.SSH.Addr(), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// DumpOptions tune Dump.
type DumpOptions struct {
	Databases []string // required
	ExtraArgs []string
}

// Dump runs mysqldump and writes its output to w. It returns the row count
// of every table seen in the dump's INSERT statements.
func (o Options) Dump(ctx context.Context, d DumpOptions, w io.Writer) (map[TableKey]int64, error) {
	if len(d.Databases) == 0 {
		return nil, fmt.Errorf("%w: no database to dump", ErrDump)
	}
	prog := o.Mysqldump
	if prog == "" {
		prog = "mysqldump"
	}
	args := []string{"--single-transaction", "--routines", "--triggers", "--events",
		"--quick", "--hex-blob", "--default-character-set=utf8mb4", "--add-drop-database"}
	args = append(args, d.ExtraArgs...)
	args = append(args, "--databases")
	args = append(args, d.Databases...)
	rc := newRowCounter()
	if err := o.RunClient(ctx, prog, args, nil, io.MultiWriter(w, rc)); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrDump, err)
	}
	if !rc.complete {
		return nil, fmt.Errorf("%w: the dump does not end with mysqldump's \"Dump completed\" line (cut short?)", ErrDump)
	}
	return rc.counts, nil
}
