package lock

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeLock(t *testing.T, dir string, i Info) {
	t.Helper()
	b, _ := json.Marshal(i)
	if err := os.WriteFile(filepath.Join(dir, "backup.lock"), b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestAcquire(t *testing.T) {
	host, _ := os.Hostname()
	parentStart, err := procStart(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		existing *Info
		wantErr  error
	}{
		{"free", nil, nil},
		{"live process here", &Info{Host: host, PID: os.Getppid(), Program: "backup"}, ErrLocked},
		{"dead process here is stale", &Info{Host: host, PID: deadPID(t), Program: "backup"}, nil},
		{"live process here, same start time", &Info{Host: host, PID: os.Getppid(), ProcStart: parentStart, Program: "backup"}, ErrLocked},
		// The holder died and its pid now belongs to another process (here
		// our parent, which started at another time than the record says).
		{"pid reused by another process is stale", &Info{Host: host, PID: os.Getppid(), ProcStart: parentStart + 1, Program: "backup"}, nil},
		{"other host", &Info{Host: "elsewhere.example", PID: 1, Program: "backup"}, ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.existing != nil {
				tt.existing.Start = time.Now()
				writeLock(t, dir, *tt.existing)
			}
			l, err := Acquire(dir, "backup", "backup")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Acquire = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.existing.Host) {
					t.Errorf("message does not name the holder: %v", err)
				}
				return
			}
			if _, err := Acquire(dir, "backup", "backup"); !errors.Is(err, ErrLocked) {
				t.Fatalf("second Acquire = %v, want ErrLocked (we are alive)", err)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Fatalf("left behind %v", entries)
			}
		})
	}
}

// TestAcquireRecordsProcStart: the lock records this process's start time,
// as /proc says it, so that a later run can tell a reused pid from us.
func TestAcquireRecordsProcStart(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "backup", "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Release(); err != nil {
			t.Error(err)
		}
	}()
	held, _, err := read(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	want, err := procStart(os.Getpid())
	if err != nil || want == 0 {
		t.Fatalf("procStart(self) = %d, %v", want, err)
	}
	if held.ProcStart != want {
		t.Fatalf("lock records proc_start %d, want %d", held.ProcStart, want)
	}
	if !alive(held) {
		t.Fatal("our own record is not alive")
	}
}
