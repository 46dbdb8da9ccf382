package leader

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

// Modes.
const (
	ModeNone   = "none"
	ModeStatic = "static"
	ModeMySQL  = "mysql"
	ModeHTTP   = "http"
)

// ErrUnavailable: the leader source (the cluster service, MySQL) did not
// give an answer, so this node cannot tell whether it leads.
var ErrUnavailable = errors.New("cannot tell the cluster leader")

// ErrSecretFile: a token or password file is missing, empty, or readable
// by group or others.
var ErrSecretFile = errors.New("leader secret file unusable")

// Options say how to find the leader.
type Options struct {
	Mode     string // none, static, mysql, http; "" = http with URL, else none
	NodeName string // this node, as the leader source names nodes

	Host string // static: the leader's node name

	URL          string // http: the cluster service
	Field        string // http: dotted JSON field naming the leader ("leader" when empty)
	TokenFile    string // http: bearer token (0600 file)
	Username     string // http: basic auth user
	PasswordFile string // http: basic auth password (0600 file)
	CAFile       string // http: PEM CA for https; empty: system roots
	Timeout      time.Duration

	// MySQL opens this node's MySQL (mysql mode); the caller knows how.
	MySQL func(ctx context.Context) (*sql.DB, error)
}

// Result is the answer.
type Result struct {
	Leader bool   // this node works
	Name   string // the leader's name, when the source names one
	Note   string // one line for the log: why this node does or does not work
}

// Validate checks the settings before any I/O and fills defaults. Its
// errors are usage errors (exit 2).
func (o *Options) Validate() error {
	if o.Mode == "" {
		o.Mode = ModeNone
		if o.URL != "" {
			o.Mode = ModeHTTP
		}
	}
	switch o.Mode {
	case ModeNone:
	case ModeStatic:
		if o.Host == "" {
			return cli.Usagef("--leader-mode static needs --leader-host (the leader's node name)")
		}
	case ModeMySQL:
		if o.MySQL == nil {
			return cli.Usagef("--leader-mode mysql needs this node's MySQL settings")
		}
	case ModeHTTP:
		if o.URL == "" {
			return cli.Usagef("--leader-mode http needs --leader-url (Squirro's cluster service)")
		}
		if o.TokenFile != "" && (o.Username != "" || o.PasswordFile != "") {
			return cli.Usagef("--leader-token-file and --leader-username/--leader-password-file exclude each other: use one way to log in")
		}
		if (o.Username == "") != (o.PasswordFile == "") {
			return cli.Usagef("basic auth for the leader URL needs both --leader-username and --leader-password-file")
		}
	default:
		return cli.Usagef("--leader-mode %q: want none, static, mysql or http", o.Mode)
	}
	if o.Field == "" {
		o.Field = "leader"
	}
	if o.NodeName == "" {
		o.NodeName, _ = os.Hostname()
	}
	return nil
}

// Find says whether this node leads. Call Validate first.
func Find(ctx context.Context, o Options) (Result, error) {
	switch o.Mode {
	case ModeStatic:
		return Result{Leader: o.NodeName == o.Host, Name: o.Host,
			Note: fmt.Sprintf("leader is %s (static), this node is %s", o.Host, o.NodeName)}, nil
	case ModeMySQL:
		return fromMySQL(ctx, o)
	case ModeHTTP:
		name, err := fromHTTP(ctx, o)
		if err != nil {
			return Result{}, err
		}
		return Result{Leader: name == o.NodeName, Name: name,
			Note: fmt.Sprintf("leader is %s (from %s), this node is %s", name, o.URL, o.NodeName)}, nil
	}
	return Result{Leader: true, Name: o.NodeName, Note: "leader-mode none: this node works"}, nil
}

func fromMySQL(ctx context.Context, o Options) (Result, error) {
	db, err := o.MySQL(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("%w: leader by writable MySQL: %w", ErrUnavailable, err)
	}
	defer db.Close()
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		return Result{}, fmt.Errorf("%w: leader by writable MySQL: read @@read_only: %w", ErrUnavailable, err)
	}
	if ro != 0 {
		return Result{Note: "MySQL on this node is read-only (a replica): not the leader"}, nil
	}
	return Result{Leader: true, Name: o.NodeName, Note: "MySQL on this node is writable: this node is the leader"}, nil
}

// secret reads a 0600 file's first line.
func secret(what, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%w: %s %s: %w", ErrSecretFile, what, path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s %s is readable by others (mode %04o): chmod 600 %s", ErrSecretFile, what, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %s %s: %w", ErrSecretFile, what, path, err)
	}
	s, _, _ := strings.Cut(string(b), "\n")
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: %s %s is empty", ErrSecretFile, what, path)
	}
	return s, nil
}

func httpClient(o Options) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("leader CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("leader CA file %s: no PEM certificate in it", o.CAFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t}, nil
}

func fromHTTP(ctx context.Context, o Options) (string, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: leader URL %s: %s", ErrUnavailable, o.URL, fmt.Sprintf(format, args...))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return fail("%v", err)
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case o.TokenFile != "":
		tok, err := secret("leader token file", o.TokenFile)
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case o.Username != "":
		pw, err := secret("leader password file", o.PasswordFile)
		if err != nil {
			return "", err
		}
		req.SetBasicAuth(o.Username, pw)
	}
	c, err := httpClient(o)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fail("answered %s: check leader-token-file or leader-username/leader-password-file", resp.Status)
	}
	if resp.StatusCode/100 != 2 {
		return fail("answered %s", resp.Status)
	}
	var v any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return fail("not JSON: %v", err)
	}
	for _, k := range strings.Split(o.Field, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return fail("no field %q in the answer (leader-json-field)", o.Field)
		}
		v = m[k]
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return fail("field %q is not a non-empty string (leader-json-field)", o.Field)
	}
	return s, nil
}

// Flags are the leader settings, the same in backup and restore.
func Flags(f cli.Flags) []ucli.Flag {
	return []ucli.Flag{
		f.String("node-name", "", "this node's name as the leader source names it (default: host name)"),
		f.String("leader-mode", "", "how to find the cluster leader: none (this node always works), static, mysql (writable MySQL), http (Squirro's cluster service); default: http when leader-url is set, else none"),
		f.String("leader-host", "", "static: the leader's node name"),
		f.String("leader-url", "", "http: URL of Squirro's cluster service that names the leader"),
		f.String("leader-json-field", "leader", "http: dotted JSON field of the answer holding the leader's node name"),
		f.Path("leader-token-file", "", "http: file (0600) holding a bearer token"),
		f.String("leader-username", "", "http: basic auth user"),
		f.Path("leader-password-file", "", "http: file (0600) holding the basic auth password"),
		f.Path("leader-ca-file", "", "http: PEM CA certificate of the cluster service (https)"),
	}
}

// FromContext reads the Flags settings (MySQL is the caller's to set).
func FromContext(c *ucli.Context) Options {
	return Options{
		Mode: c.String("leader-mode"), NodeName: c.String("node-name"), Host: c.String("leader-host"),
		URL: c.String("leader-url"), Field: c.String("leader-json-field"), TokenFile: c.Path("leader-token-file"),
		Username: c.String("leader-username"), PasswordFile: c.Path("leader-password-file"), CAFile: c.Path("leader-ca-file"),
	}
}

// EvenWarning says why n voting members (master-eligible Elasticsearch
// nodes, application nodes) is a poor cluster size: an even number cannot
// break a tied vote, so it survives no more failures than one node fewer.
// It is "" for 0, 1 or an odd number. what names the members.
func EvenWarning(what string, n int) string {
	if n <= 1 || n%2 == 1 {
		return ""
	}
	return fmt.Sprintf("%d %s: an even number cannot break a tied vote and survives no more failures than %d; use an odd number (a reduced site may run 1)", n, what, n-1)
}
