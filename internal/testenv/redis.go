package testenv

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a running redis-server on a loopback port, without persistence.
type RedisServer struct {
	Addr string // 127.0.0.1:port
	Port int
	Dir  string
	proc *Proc
}

// Stop stops the server.
func (r *RedisServer) Stop() { r.proc.Stop() }

// Pid is the server's process id.
func (r *RedisServer) Pid() int { return r.proc.Pid }

// Client returns a go-redis client, closed when the test ends.
func (r *RedisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Redis starts a fresh server for one test, stopped when the test ends.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	r, err := StartRedis(bg(), tempDir(t, "redis"), StartOptions{})
	need(t, "redis", err)
	t.Cleanup(r.Stop)
	return r
}

// StartRedis starts redis-server in dir.
func StartRedis(ctx context.Context, dir string, o StartOptions) (*RedisServer, error) {
	return retryPorts(func() (*RedisServer, error) { return startRedisOnce(ctx, dir, o) })
}

func startRedisOnce(ctx context.Context, dir string, o StartOptions) (*RedisServer, error) {
	bin, err := lookBin("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, Dir: dir}
	p, err := startProc(procSpec{Name: "redis", Path: bin, Dir: dir, Detached: o.Detached, Args: append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--logfile", "",
	}, o.ExtraArgs...)})
	if err != nil {
		return nil, err
	}
	r.proc = p
	err = p.waitReady(ctx, port, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: r.Addr})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		p.Stop()
		return nil, err
	}
	return r, nil
}
