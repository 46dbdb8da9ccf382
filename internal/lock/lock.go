package lock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrLocked means another run holds the lock (exit code 6).
var ErrLocked = errors.New("channel is locked by another run")

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
}

func (i Info) String() string {
	return fmt.Sprintf("%s pid %d on %s since %s", i.Program, i.PID, i.Host, i.Start.UTC().Format(time.RFC3339))
}

// Lock is a held lock.
type Lock struct {
	path string
	info Info
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

// Acquire takes the lock <dir>/<name>.lock for program. dir must exist.
func Acquire(dir, name, program string) (*Lock, error) {
	host, err := hostname()
	if err != nil {
		return nil, fmt.Errorf("lock: hostname: %w", err)
	}
	me := Info{Host: host, PID: os.Getpid(), Start: time.Now().UTC(), Program: program}
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
		if held.Host != host || alive(held) {
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

// Release removes the lock if it is still ours.
func (l *Lock) Release() error {
	held, _, err := read(l.path)
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.path, err)
	}
	if held.PID != l.info.PID || held.Host != l.info.Host || !held.Start.Equal(l.info.Start) {
		return fmt.Errorf("release lock %s: now held by %s, leaving it", l.path, held)
	}
	return os.Remove(l.path)
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
		os.Remove(path)
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
