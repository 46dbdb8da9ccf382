package lock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// ErrLocked means another run holds the lock (exit code 6).
var ErrLocked = errors.New("channel is locked by another run")

// ErrLost means a held lock's lease was taken over by another run (the
// holder did not renew it within the lease, e.g. its host hung). The
// holder must stop without publishing anything.
var ErrLost = errors.New("lock lost: the lease expired and another run took it")

// Info is what a lock file records.
type Info struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Start   time.Time `json:"start"`
	Program string    `json:"program"`
	// ProcStart is the process's start time in clock ticks since boot
	// (field 22 of /proc/<pid>/stat); 0 when unknown (not Linux, or a lock
	// written by an older version). With it a pid that was reused by
	// another process after the holder died is not taken for the holder.
	ProcStart uint64 `json:"proc_start,omitempty"`
	// LeaseSeconds is the holder's lease: it renews the lock well within
	// it, and a lock not renewed for that long is expired, whatever host
	// holds it. 0: no lease (a lock of another host never expires).
	LeaseSeconds int64 `json:"lease_seconds,omitempty"`
	// Renewed is when the holder last renewed the lock (its clock).
	Renewed time.Time `json:"renewed,omitzero"`
}

func (i Info) String() string {
	return fmt.Sprintf("%s pid %d on %s since %s", i.Program, i.PID, i.Host, i.Start.UTC().Format(time.RFC3339))
}

// Lock is a held lock.
type Lock struct {
	path string
	info Info
	stop chan struct{} // closes the renewal loop (Keep)
	done chan struct{}
}

// Options say who takes a lock and for how long.
type Options struct {
	Program string
	// Host names the holder; default: the host name. Nodes of one cluster
	// must use distinct names (node-name), so that a dead holder on
	// another node is judged by its lease, not by a local pid.
	Host string
	// Lease: the holder renews the lock every Lease/3 (Keep); a lock not
	// renewed for Lease is expired and any run may take it over. 0: no
	// lease, a lock of another host never expires.
	Lease time.Duration
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// hostname is a variable so tests can play another host.
var hostname = os.Hostname

// alive reports whether the holder recorded in i still runs on this host:
// its pid exists and, when both are known, the process with that pid started
// when the holder did (otherwise the pid was reused after the holder died).
func alive(i Info) bool {
	err := syscall.Kill(i.PID, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if i.ProcStart == 0 {
		return true
	}
	now, err := procStart(i.PID)
	if err != nil {
		return true // cannot tell: assume the holder
	}
	return now == i.ProcStart
}

// procStart returns the start time of process pid in clock ticks since
// boot, from /proc/<pid>/stat.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // f[0] is field 3 (state)
	if len(f) <= startField {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.ParseUint(f[startField], 10, 64)
}

// Acquire takes the lock <dir>/<name>.lock for program, without a lease.
// dir must exist.
func Acquire(dir, name, program string) (*Lock, error) {
	return AcquireWith(dir, name, Options{Program: program})
}

// expired reports whether a lock with a lease has not been renewed within
// it. The age is taken from the file's modification time as the file
// system records it (on NFS the server's clock, the same for every node),
// or from the recorded renewal when that is later.
func expired(i Info, fi os.FileInfo, now time.Time) bool {
	if i.LeaseSeconds <= 0 {
		return false
	}
	last := fi.ModTime()
	if i.Renewed.After(last) {
		last = i.Renewed
	}
	return now.Sub(last) > time.Duration(i.LeaseSeconds)*time.Second
}

// AcquireWith takes the lock <dir>/<name>.lock. dir must exist. A lock
// held by a dead process of this host, or one whose lease expired, is
// taken over.
func AcquireWith(dir, name string, o Options) (*Lock, error) {
	host := o.Host
	if host == "" {
		h, err := hostname()
		if err != nil {
			return nil, fmt.Errorf("lock: hostname: %w", err)
		}
		host = h
	}
	now := time.Now().UTC()
	me := Info{Host: host, PID: os.Getpid(), Start: now, Program: o.Program}
	if o.Lease > 0 {
		me.LeaseSeconds = int64((o.Lease + time.Second - 1) / time.Second)
		me.Renewed = now
	}
	me.ProcStart, _ = procStart(me.PID) // 0 (unknown) without /proc
	path := filepath.Join(dir, name+".lock")
	data, err := json.Marshal(me)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		err := create(path, data)
		if err == nil {
			return &Lock{path: path, info: me}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		held, raw, rerr := read(path)
		if errors.Is(rerr, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if rerr != nil {
			return nil, fmt.Errorf("%w: %s exists but is unreadable (%v); remove it if no run is active", ErrLocked, path, rerr)
		}
		fi, serr := os.Stat(path)
		if serr != nil {
			continue // released meanwhile
		}
		if exp := expired(held, fi, time.Now()); !exp && (held.Host != host || alive(held)) {
			if held.LeaseSeconds > 0 {
				return nil, fmt.Errorf("%w: %s holds %s, renewed %s ago (lease %ds); a holder that died gives the lock up when its lease expires",
					ErrLocked, held, path, time.Since(fi.ModTime()).Round(time.Second), held.LeaseSeconds)
			}
			return nil, fmt.Errorf("%w: %s holds %s; wait for it to finish, or remove the file if that process is surely gone", ErrLocked, held, path)
		}
		// Stale: rename it aside; only one contender wins the rename.
		aside := path + ".stale-" + strconv.Itoa(me.PID)
		if err := os.Rename(path, aside); err != nil {
			continue
		}
		// Make sure we moved the stale record and not a fresh lock.
		if _, again, _ := read(aside); string(again) != string(raw) {
			_ = os.Rename(aside, path)
			continue
		}
		_ = os.Remove(aside)
	}
	return nil, fmt.Errorf("%w: %s: could not take the lock after 3 attempts", ErrLocked, path)
}

func (l *Lock) ours(held Info) bool {
	return held.PID == l.info.PID && held.Host == l.info.Host && held.Start.Equal(l.info.Start)
}

// Renew records that the holder is alive: the lock file is replaced by
// one with a new renewal time (written aside, then renamed over it). It
// returns ErrLost when the file no longer holds this lock.
func (l *Lock) Renew() error {
	held, _, err := read(l.path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrLost, l.path, err)
	}
	if !l.ours(held) {
		return fmt.Errorf("%w: %s is now held by %s", ErrLost, l.path, held)
	}
	i := l.info
	i.Renewed = time.Now().UTC()
	data, err := json.Marshal(i)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(l.path), manifest.TempPrefix+filepath.Base(l.path)+"-"+strconv.Itoa(i.PID))
	if err := create(tmp, data); err != nil {
		return fmt.Errorf("renew lock %s: %w", l.path, err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("renew lock %s: %w", l.path, err)
	}
	return nil
}

// Keep renews a lock with a lease every lease/3 until Release, and
// returns a context that is cancelled (cause ErrLost) when a renewal finds
// the lock taken over: the run must not go on to publish. A lock without
// a lease returns ctx unchanged.
func (l *Lock) Keep(ctx context.Context) context.Context {
	if l.info.LeaseSeconds <= 0 || l.stop != nil {
		return ctx
	}
	ctx, cancel := context.WithCancelCause(ctx)
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	every := time.Duration(l.info.LeaseSeconds) * time.Second / 3
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := l.Renew(); errors.Is(err, ErrLost) {
					cancel(err)
					return
				}
				// Another error (NFS briefly away): try again at the
				// next tick; the lease allows two misses.
			}
		}
	}()
	return ctx
}

// Release stops the renewal and removes the lock if it is still ours.
func (l *Lock) Release() error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
	held, _, err := read(l.path)
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.path, err)
	}
	if !l.ours(held) {
		return fmt.Errorf("release lock %s: now held by %s, leaving it", l.path, held)
	}
	return os.Remove(l.path)
}

// ReleaseLogged is Release for a defer, once the work under the lock is
// over: a lock that cannot be released is logged (the work's own result
// stands; the lease lets the next holder take the lock over).
func (l *Lock) ReleaseLogged(log *slog.Logger) {
	if err := l.Release(); err != nil {
		log.Warn("release lock", "err", err)
	}
}

func create(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

func read(path string) (Info, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Info{}, nil, err
	}
	var i Info
	if err := json.Unmarshal(b, &i); err != nil {
		return Info{}, b, fmt.Errorf("malformed lock file: %v", err)
	}
	return i, b, nil
}
