// Command scalebench runs the files stage of backup and of restore on
// their own, so that bench/scale.sh can measure each as a separate process
// (wall time and peak RSS from /usr/bin/time) beside rsync -a. It calls the
// same code the programs call: filetree.Capture with the capture cache
// into the channel's object store and a signed manifest.Publish (backup's
// files stage and publish), filetree.Apply onto a local directory from a
// verified set (restore's files stage). Transfer is measured with the real
// `transfer` program.
//
//	scalebench gen DIR N             N files of ~900 bytes, 1000 per directory
//	scalebench change DIR PER        rewrite one file in PER (100: 1%), the
//	                                 first ones, as new documents arrive
//	                                 together in a few directories
//	scalebench capture CHANNEL TREE CACHE KEY     capture TREE, publish the next set
//	scalebench restore CHANNEL TARGET [RECORD]    apply the newest set's tree onto TARGET; with
//	                                              RECORD (a file), skip the directories whose list
//	                                              equals the one recorded there by the last run, as
//	                                              restore does (restore/filesrecord.go)
//	scalebench lists CHANNEL                      sizes of the newest set's lists
//	scalebench verify CHANNEL ALLOWED_SIGNERS     manifest.Verify of the newest set, no cache
//	                                              (what transfer verify --cache off runs; for profiles)
//	scalebench sshd DIR                           start an OpenSSH sshd on a loopback port (testenv, as
//	                                              the tests do), write DIR/env (SSH_PORT, SSH_USER,
//	                                              SSH_KEY, SSH_KNOWN_HOSTS: shell assignments), serve until
//	                                              stdin closes or a signal comes; then stop it
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"syscall"
	"time"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

func main() {
	cli.TuneGC() // as the programs do (cli.Run)
	// BCP_CPUPROFILE=FILE writes a CPU profile of the run (go tool pprof).
	if f := os.Getenv("BCP_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err == nil {
			err = pprof.StartCPUProfile(out)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scalebench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	// BCP_TRACE=FILE writes an execution trace (go tool trace): where the
	// goroutines of a run wait on each other.
	if f := os.Getenv("BCP_TRACE"); f != "" {
		out, err := os.Create(f)
		if err == nil {
			err = trace.Start(out)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scalebench:", err)
			os.Exit(1)
		}
		defer trace.Stop()
	}
	if err := run(context.Background(), os.Args[1:]); err != nil {
		pprof.StopCPUProfile()
		trace.Stop()
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

var channel = manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: scalebench gen|change|capture|restore|lists ARGS")
	}
	need := func(n int) error {
		if len(args)-1 != n {
			return fmt.Errorf("%s wants %d arguments", args[0], n)
		}
		return nil
	}
	switch args[0] {
	case "gen":
		if err := need(2); err != nil {
			return err
		}
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		return gen(args[1], n)
	case "change":
		if err := need(2); err != nil {
			return err
		}
		every, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		return change(args[1], every)
	case "capture":
		if err := need(4); err != nil {
			return err
		}
		return capture(ctx, args[1], args[2], args[3], args[4])
	case "restore":
		record := ""
		if len(args) == 4 { // the record is optional
			record = args[3]
		} else if err := need(2); err != nil {
			return err
		}
		return restore(ctx, args[1], args[2], record)
	case "lists":
		if err := need(1); err != nil {
			return err
		}
		return lists(ctx, args[1])
	case "verify":
		if err := need(2); err != nil {
			return err
		}
		return verify(ctx, args[1], args[2])
	case "sshd":
		if err := need(1); err != nil {
			return err
		}
		return sshd(ctx, args[1])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func fileName(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("d%04d", i/1000), fmt.Sprintf("f%07d.pdf", i))
}

func content(i, gen int) []byte {
	b := bytes.Repeat([]byte(fmt.Sprintf("document %d generation %d ", i, gen)), 40)
	return b[:880+i%40]
}

func gen(dir string, n int) error {
	for i := 0; i < n; i++ {
		p := fileName(dir, i)
		if i%1000 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				return err
			}
		}
		if err := os.WriteFile(p, content(i, 0), 0o640); err != nil {
			return err
		}
	}
	return nil
}

func change(dir string, every int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	n := 0
	for _, d := range ents {
		fs, err := os.ReadDir(filepath.Join(dir, d.Name()))
		if err != nil {
			return err
		}
		n += len(fs)
	}
	later := time.Now().Add(time.Minute)
	for i := 0; i < n/every; i++ {
		p := fileName(dir, i)
		if err := os.WriteFile(p, content(i, int(later.Unix())), 0o640); err != nil {
			return err
		}
		if err := os.Chtimes(p, later, later); err != nil {
			return err
		}
	}
	return nil
}

func capture(ctx context.Context, ch, tree, cacheFile, key string) error {
	if _, err := manifest.ReadChannel(ch); err != nil {
		if err := manifest.WriteChannel(ch, channel); err != nil {
			return err
		}
	}
	l := manifest.Layout{Root: ch}
	store := objects.New(l.ObjectsDir())
	cache, err := filetree.LoadCaptureCache(cacheFile)
	if err != nil {
		return err
	}
	t, next, st, err := filetree.Capture(ctx, filetree.CaptureOptions{Name: "storage", Root: tree, Source: &filetree.LocalSource{Dir: tree}, Store: store, Cache: cache, CacheDir: filepath.Dir(cacheFile)})
	if err != nil {
		return err
	}
	sets, err := manifest.List(ch)
	if err != nil {
		return err
	}
	seq := uint64(1)
	if len(sets) > 0 {
		seq = sets[len(sets)-1].Sequence + 1
	}
	signer, err := sshsig.LoadSigner(key)
	if err != nil {
		return err
	}
	m := &manifest.Manifest{Channel: channel, Sequence: seq, Created: time.Now().UTC(),
		Producer: manifest.Producer{Host: "bench", Program: "scalebench", Version: "1"}, Epoch: 1, Trees: []manifest.Tree{t}}
	id, err := manifest.Publish(ctx, l, m, signer)
	if err != nil {
		return err
	}
	next.SetID = id
	if err := next.Save(cacheFile); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "set %s: %d files, %d read, %d reused, %d lists (%d bytes, %d reused)\n", id, st.Files, st.ReadFiles, st.Reused, st.Lists, st.ListBytes, st.ReusedLists)
	return nil
}

func newest(ch string) (*manifest.Manifest, error) {
	sets, err := manifest.List(ch)
	if err != nil || len(sets) == 0 {
		return nil, fmt.Errorf("no set in %s: %v", ch, err)
	}
	data, err := os.ReadFile(manifest.Layout{Root: ch}.ManifestPath(sets[len(sets)-1].ID))
	if err != nil {
		return nil, err
	}
	return manifest.Decode(data)
}

func restore(ctx context.Context, ch, target, record string) error {
	m, err := newest(ch)
	if err != nil {
		return err
	}
	store := objects.New(manifest.Layout{Root: ch}.ObjectsDir())
	tgt, err := filetree.NewLocalTarget(target)
	if err != nil {
		return err
	}
	defer tgt.Close()
	t := m.Trees[0]
	o := filetree.ApplyOptions{Target: tgt, Objects: storeObjects{store},
		Entries: func(fn func(manifest.Entry) error) error { return store.Trees().Walk(ctx, t, fn) }}
	var old manifest.Tree
	if b, err := os.ReadFile(record); record != "" && err == nil && json.Unmarshal(b, &old.Dir) == nil {
		o.Beside = func(fn func(manifest.Entry, bool) error) (bool, error) {
			return store.Trees().WalkBeside(ctx, t, old, fn)
		}
	}
	if record != "" {
		if err := os.Remove(record); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	st, err := filetree.Apply(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "restored: %d added, %d replaced, %d unchanged, %d bytes, %d directories skipped\n", st.Added, st.Replaced, st.Unchanged, st.Bytes, st.SkippedDirs)
	if record == "" {
		return nil
	}
	b, err := json.Marshal(t.Dir)
	if err != nil {
		return err
	}
	return manifest.WriteFileAtomic(record, b, 0o600)
}

type storeObjects struct{ s *objects.Store }

func (o storeObjects) Open(sha string) (io.ReadCloser, error) { return o.s.Open(sha) }

// ObjectsDir: as restore's adapter (filetree.ObjectDir), so that the
// objects are opened relative to their fan-out directory.
func (o storeObjects) ObjectsDir() string { return o.s.Root() }

func lists(ctx context.Context, ch string) error {
	m, err := newest(ch)
	if err != nil {
		return err
	}
	store := objects.New(manifest.Layout{Root: ch}.ObjectsDir())
	r := store.Trees()
	var n, size int64
	r.List = func(ref manifest.Ref) error { n++; size += ref.Size; return nil }
	if err := r.Walk(ctx, m.Trees[0], func(manifest.Entry) error { return nil }); err != nil {
		return err
	}
	fmt.Printf("%d %d\n", n, size)
	return nil
}

func verify(ctx context.Context, ch, allowedSigners string) error {
	allowed, err := sshsig.LoadAllowedSigners(allowedSigners)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := manifest.Verify(ctx, manifest.VerifyOptions{Root: ch, AllowedSigners: allowed, Progress: phases{start}})
	fmt.Fprintf(os.Stderr, "%.2fs done\n", time.Since(start).Seconds())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "set %s: %s, %d files, %d hashed\n", rep.SetID, rep.Status, rep.Files, rep.Hashed)
	return nil
}

// phases prints when each phase of Verify starts.
type phases struct{ start time.Time }

func (p phases) Begin(what string, total int64, unit string) {
	fmt.Fprintf(os.Stderr, "%.2fs %s (%d %s)\n", time.Since(p.start).Seconds(), what, total, unit)
}
func (phases) Add(int64) {}
func (phases) End()      {}

// sshd runs a loopback sshd for the push and rsync over SSH until stdin
// closes or SIGINT/SIGTERM, and writes how to log in to DIR/env.
func sshd(ctx context.Context, dir string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := testenv.StartSSHD(ctx, dir, testenv.StartOptions{})
	if err != nil {
		return err
	}
	defer s.Stop()
	env := fmt.Sprintf("SSH_PORT=%d\nSSH_USER=%s\nSSH_KEY=%s\nSSH_KNOWN_HOSTS=%s\n", s.Port, s.User, s.KeyFile, s.KnownHosts)
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(env), 0o600); err != nil {
		return err
	}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return nil
}
