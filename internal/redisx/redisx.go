package redisx

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Options says which Redis to flush.
type Options struct {
	Addr         string // host:port
	Username     string
	PasswordFile string // file holding the password; empty for none
	// DBs are the database numbers to flush; empty means all (FLUSHALL).
	DBs []int
}

// dialer returns a function that connects to database db.
func dialer(opts Options) (func(db int) *redis.Client, error) {
	if opts.Addr == "" {
		return nil, fmt.Errorf("redis: no address configured")
	}
	pw := ""
	if opts.PasswordFile != "" {
		b, err := os.ReadFile(opts.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redis %s: read password file: %w", opts.Addr, err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	return func(db int) *redis.Client {
		return redis.NewClient(&redis.Options{Addr: opts.Addr, Username: opts.Username, Password: pw, DB: db,
			MaxRetries: 2, DisableIdentity: true})
	}, nil
}

// Ping checks that Redis answers with these credentials (a restore's
// preflight), changing nothing.
func Ping(ctx context.Context, opts Options) error {
	dial, err := dialer(opts)
	if err != nil {
		return err
	}
	c := dial(0)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: PING: %w (is it running, are redis-addr and the password right?)", opts.Addr, err)
	}
	return nil
}

// Flush empties the configured databases. It returns which were flushed
// ("all" for FLUSHALL).
func Flush(ctx context.Context, opts Options) ([]string, error) {
	dial, err := dialer(opts)
	if err != nil {
		return nil, err
	}
	if len(opts.DBs) == 0 {
		c := dial(0)
		defer c.Close()
		if err := c.FlushAll(ctx).Err(); err != nil {
			return nil, fmt.Errorf("redis %s: FLUSHALL: %w", opts.Addr, err)
		}
		return []string{"all"}, nil
	}
	var done []string
	for _, db := range opts.DBs {
		c := dial(db)
		err := c.FlushDB(ctx).Err()
		_ = c.Close()
		if err != nil {
			return done, fmt.Errorf("redis %s: FLUSHDB on db %d: %w (flushed so far: %v)", opts.Addr, db, err, done)
		}
		done = append(done, fmt.Sprint(db))
	}
	return done, nil
}
