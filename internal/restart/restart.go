package restart

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/manifest"
)

// ErrFailed is returned (wrapped) when the restart failed on at least one node.
var ErrFailed = errors.New("restart failed")

// Node is one node of the site.
type Node struct {
	Name string // shown in results; the SSH address when empty
	SSH  sshx.Config
}

// Options configures Run.
type Options struct {
	Nodes   []Node
	Command string        // run by the login shell of the SSH user, e.g. "sudo /opt/squirro/restart.sh"
	Timeout time.Duration // per node; 10 minutes when zero
	// Progress counts the nodes done (task "restart", in nodes); nil: none.
	Progress manifest.Progress
}

// Result is the outcome on one node.
type Result struct {
	Node     string        `json:"node"`
	OK       bool          `json:"ok"`
	ExitCode int           `json:"exit_code"` // -1 when the command did not run or ended without a status
	Output   string        `json:"output,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
	Err      error         `json:"-"`
}

// Run runs opts.Command on every node in parallel and returns one Result per
// node in configuration order. The error wraps ErrFailed and names the failed
// nodes when any failed.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	if strings.TrimSpace(opts.Command) == "" {
		return nil, errors.New("restart: no restart command configured")
	}
	if len(opts.Nodes) == 0 {
		return nil, errors.New("restart: no nodes configured")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	p := opts.Progress
	if p == nil {
		p = manifest.NoProgress{}
	}
	p.Begin("restart", int64(len(opts.Nodes)), "nodes")
	defer p.End()
	results := make([]Result, len(opts.Nodes))
	var wg sync.WaitGroup
	for i, n := range opts.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := n.Name
			if name == "" {
				name = n.SSH.Addr()
			}
			results[i] = runOne(ctx, name, n.SSH, opts.Command, opts.Timeout)
			p.Add(1)
		}()
	}
	wg.Wait()
	var failed []string
	for _, r := range results {
		if !r.OK {
			failed = append(failed, fmt.Sprintf("%s (%s)", r.Node, r.Error))
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("%w on %d of %d nodes: %s; the other nodes restarted, run the restart command by hand on the failed ones", ErrFailed, len(failed), len(results), strings.Join(failed, "; "))
	}
	return results, nil
}

func runOne(ctx context.Context, name string, cfg sshx.Config, command string, timeout time.Duration) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := Result{Node: name, ExitCode: -1}
	fail := func(err error) Result {
		res.Err = err
		res.Error = err.Error()
		res.Duration = time.Since(start)
		return res
	}
	c, err := sshx.Dial(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	var out sshx.Tail
	// The session's own cancellation does not stop a command that ignores
	// SIGTERM (and OpenSSH waits for it before closing the channel), so on
	// timeout the whole connection is dropped.
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, command, nil, &out, &out) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		_ = c.Close()
		<-errc
		err = ctx.Err()
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	res.Output = out.String()
	var ee *ssh.ExitError
	switch {
	case err == nil:
		res.ExitCode = 0
		res.OK = true
		res.Duration = time.Since(start)
		return res
	case errors.Is(err, context.DeadlineExceeded):
		return fail(fmt.Errorf("no result within %s (the command may still be running on the node)", timeout))
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		return fail(fmt.Errorf("%q exited %d", command, ee.ExitStatus()))
	default:
		return fail(err)
	}
}
