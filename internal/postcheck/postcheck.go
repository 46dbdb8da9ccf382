package postcheck

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v7"
	_ "github.com/go-sql-driver/mysql" // MySQL driver for the "answers" check
)

// ErrFailed is returned (wrapped) when at least one check did not pass.
var ErrFailed = errors.New("post-checks failed")

// Options says what to check.
type Options struct {
	URLs     []string              // health URLs that must answer 2xx
	ES       *elasticsearch.Client // nil: no Elasticsearch check
	MySQLDSN string                // go-sql-driver DSN; empty: no MySQL check
	// Timeout bounds the whole check; 5 minutes when zero.
	Timeout time.Duration
	// Interval between attempts of one check; 2s when zero.
	Interval time.Duration
	// HTTPClient for the health URLs; a client with a 10s timeout when nil.
	HTTPClient *http.Client
}

// Result is the outcome of one check.
type Result struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Detail   string        `json:"detail,omitempty"`
	Error    string        `json:"error,omitempty"`
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"duration"`
}

type check struct {
	name string
	fn   func(ctx context.Context) (string, error)
}

// Run runs every configured check until it passes or opts.Timeout ends.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	var checks []check
	for _, u := range opts.URLs {
		checks = append(checks, check{"health " + u, func(ctx context.Context) (string, error) { return checkURL(ctx, hc, u) }})
	}
	if opts.ES != nil {
		checks = append(checks, check{"elasticsearch", func(ctx context.Context) (string, error) { return checkES(ctx, opts.ES) }})
	}
	if opts.MySQLDSN != "" {
		db, err := sql.Open("mysql", opts.MySQLDSN)
		if err != nil {
			return nil, fmt.Errorf("post-checks: mysql: %w", err)
		}
		defer db.Close()
		checks = append(checks, check{"mysql", func(ctx context.Context) (string, error) { return checkMySQL(ctx, db) }})
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = retry(ctx, c, opts.Interval)
		}()
	}
	wg.Wait()
	var failed []string
	for _, r := range results {
		if !r.OK {
			failed = append(failed, r.Name+": "+r.Error)
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("%w: %s", ErrFailed, strings.Join(failed, "; "))
	}
	return results, nil
}

func retry(ctx context.Context, c check, interval time.Duration) Result {
	start := time.Now()
	r := Result{Name: c.name}
	for {
		r.Attempts++
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		detail, err := c.fn(actx)
		cancel()
		if err == nil {
			r.OK, r.Detail, r.Error = true, detail, ""
			r.Duration = time.Since(start)
			return r
		}
		if ctx.Err() == nil || r.Error == "" {
			// An attempt that the deadline cut short does not replace
			// the reason the last complete one gave.
			r.Error = err.Error()
		}
		select {
		case <-ctx.Done():
			r.Error = fmt.Sprintf("%s (still failing after %d attempts in %s)", r.Error, r.Attempts, time.Since(start).Round(time.Second))
			r.Duration = time.Since(start)
			return r
		case <-time.After(interval):
		}
	}
}

func checkURL(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("answered %s", resp.Status)
	}
	return resp.Status, nil
}

func checkES(ctx context.Context, c *elasticsearch.Client) (string, error) {
	resp, err := c.Cluster.Health(c.Cluster.Health.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.IsError() {
		return "", fmt.Errorf("cluster health: %s", resp.Status())
	}
	var h struct {
		Status string `json:"status"`
		Nodes  int    `json:"number_of_nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return "", fmt.Errorf("cluster health: %w", err)
	}
	if h.Status != "green" && h.Status != "yellow" {
		return "", fmt.Errorf("cluster status %s", h.Status)
	}
	return fmt.Sprintf("status %s, %d nodes", h.Status, h.Nodes), nil
}

func checkMySQL(ctx context.Context, db *sql.DB) (string, error) {
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", err
	}
	return "version " + v, nil
}
