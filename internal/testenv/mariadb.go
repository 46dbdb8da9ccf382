package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// MariaDBServer is a running MariaDB server with its own data directory, port and
// socket. User has every privilege (WITH GRANT OPTION) and a real password,
// so wrong credentials are refused.
type MariaDBServer struct {
	Host     string // 127.0.0.1
	Port     int
	Socket   string
	User     string
	Password string
	Dir      string // data directory is Dir/data; log is Dir/mariadb.log
	proc     *Proc
}

// Addr is host:port.
func (m *MariaDBServer) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// DSN is a go-sql-driver/mysql DSN over TCP for database db (may be empty),
// with parseTime and multiStatements on.
func (m *MariaDBServer) DSN(db string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = m.User, m.Password, "tcp", m.Addr(), db
	c.ParseTime, c.MultiStatements = true, true
	return c.FormatDSN()
}

// DB opens a connection pool to the server (no default database), closed
// when the test ends.
func (m *MariaDBServer) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Defaults writes a 0600 option file with the credentials, for
// `mysqldump --defaults-extra-file=PATH` and `mysql --defaults-extra-file=PATH`,
// and returns its path.
func (m *MariaDBServer) Defaults(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "my.cnf")
	if err := m.WriteDefaults(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteDefaults writes the option file of Defaults to path (mode 0600).
func (m *MariaDBServer) WriteDefaults(path string) error {
	s := fmt.Sprintf("[client]\nuser=%s\npassword=%s\nhost=%s\nport=%d\nprotocol=tcp\n", m.User, m.Password, m.Host, m.Port)
	return os.WriteFile(path, []byte(s), 0o600)
}

// Stop stops the server.
func (m *MariaDBServer) Stop() { m.proc.Stop() }

// Pid is the server's process id.
func (m *MariaDBServer) Pid() int { return m.proc.Pid }

// MariaDB starts a fresh server for one test, stopped when the test ends.
func MariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	m, err := StartMariaDB(bg(), tempDir(t, "my"), StartOptions{})
	need(t, "mariadb", err)
	t.Cleanup(m.Stop)
	return m
}

// template is a data directory made by mariadb-install-db and copied for
// every server (install-db takes seconds; a copy, a fraction of one). It is
// kept in the user's cache directory, keyed by the server binary, so that
// test binaries share it and none leaves a copy behind.
var template struct {
	once sync.Once
	dir  string
	err  error
}

func installTemplate(server string) (string, error) {
	template.once.Do(func() { template.dir, template.err = makeTemplate(server) })
	return template.dir, template.err
}

func makeTemplate(server string) (string, error) {
	inst, err := lookBin("mariadb-server", "mariadb-install-db", "mysql_install_db")
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(server)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	root := filepath.Join(cache, "bcp-testenv")
	key := sha256.Sum256([]byte(fmt.Sprintf("%s %d %d %d", server, fi.Size(), fi.ModTime().UnixNano(), os.Geteuid())))
	final := filepath.Join(root, fmt.Sprintf("mariadb-%x", key[:8]))
	if _, err := os.Stat(filepath.Join(final, "data")); err == nil {
		return filepath.Join(final, "data"), nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, ".tmp-mariadb-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(tmp) }() // gone after the rename, unless something failed
	args := []string{"--no-defaults", "--datadir=" + filepath.Join(tmp, "data"),
		"--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve",
		"--innodb-log-file-size=32M"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	if out, err := exec.Command(inst, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %v: %w\n%s", inst, args, err, out)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another test binary got there first: use its template.
		if _, serr := os.Stat(filepath.Join(final, "data")); serr != nil {
			return "", fmt.Errorf("keep mariadb template %s: %w", final, err)
		}
	}
	return filepath.Join(final, "data"), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartMariaDB starts a MariaDB server in dir (which should be short: the
// socket lives there).
func StartMariaDB(ctx context.Context, dir string, o StartOptions) (*MariaDBServer, error) {
	return retryPorts(func() (*MariaDBServer, error) { return startMariaDBOnce(ctx, dir, o) })
}

func startMariaDBOnce(ctx context.Context, dir string, o StartOptions) (*MariaDBServer, error) {
	bin, err := lookBin("mariadb-server", "mariadbd", "mysqld")
	if err != nil {
		return nil, err
	}
	tmpl, err := installTemplate(bin)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil { // a failed attempt's copy
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", tmpl, filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy mariadb data directory: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &MariaDBServer{Host: "127.0.0.1", Port: port, Socket: filepath.Join(dir, "mysql.sock"),
		User: "bcp", Password: randomHex(12), Dir: dir}
	// The init file runs at every start with full privileges: it creates the
	// password user. It holds the password, so it is 0600.
	init := fmt.Sprintf("CREATE USER IF NOT EXISTS '%[1]s'@'%%' IDENTIFIED BY '%[2]s';\n"+
		"GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'%%' WITH GRANT OPTION;\n"+
		"CREATE USER IF NOT EXISTS '%[1]s'@'localhost' IDENTIFIED BY '%[2]s';\n"+
		"GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'localhost' WITH GRANT OPTION;\n", m.User, m.Password)
	initFile := filepath.Join(dir, "init.sql")
	if err := os.WriteFile(initFile, []byte(init), 0o600); err != nil {
		return nil, err
	}
	args := []string{"--no-defaults",
		"--datadir=" + filepath.Join(dir, "data"),
		"--tmpdir=" + filepath.Join(dir, "tmp"),
		"--socket=" + m.Socket,
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--init-file=" + initFile,
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=32M",
		"--innodb-flush-log-at-trx-commit=2",
		"--max-allowed-packet=64M",
		"--performance-schema=OFF",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args, o.ExtraArgs...)
	p, err := startProc(procSpec{Name: "mariadb", Path: bin, Args: args, Dir: dir, Detached: o.Detached})
	if err != nil {
		return nil, err
	}
	m.proc = p
	err = p.waitReady(ctx, port, func(ctx context.Context) error {
		db, err := sql.Open("mysql", m.DSN(""))
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(ctx)
	})
	if err != nil {
		p.Stop()
		return nil, err
	}
	return m, nil
}
