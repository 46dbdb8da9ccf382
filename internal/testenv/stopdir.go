package testenv

import (
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

// PidFileName is the file, in each service's directory, that records the
// service's pid and executable ("<pid> <exe>").
const PidFileName = "testenv.pid"

// ErrLeftRunning is returned (wrapped) by StopDir when a process survives.
var ErrLeftRunning = errors.New("process still running")

// Running lists the live services recorded by pid files below dir.
func Running(dir string) ([]RunningProc, error) {
	var out []RunningProc
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || d.Name() != PidFileName {
			return nil
		}
		pid, exe, err := ReadPidFile(p)
		if err != nil {
			return err
		}
		name, _ := filepath.Rel(dir, filepath.Dir(p))
		rp := RunningProc{PidFile: p, Pid: pid, Exe: exe, Name: name}
		if alive(pid, exe) {
			out = append(out, rp)
		}
		return nil
	})
	return out, err
}

// RunningProc is one live process found from a pid file.
type RunningProc struct {
	Name    string // the service's directory name
	Pid     int
	Exe     string
	PidFile string
}

// alive reports whether pid runs exe (and is not a zombie): a recycled pid
// running something else is not ours.
func alive(pid int, exe string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the ")" that ends the command name, is the state.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	if exe == "" {
		return true
	}
	got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err != nil || strings.TrimSuffix(got, " (deleted)") == exe
}

// groupMembers lists the live processes whose process group is pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid pgrp ...
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// StopDir stops every service recorded by a pid file below dir (the
// detached world of make env-up): SIGTERM to each process group, SIGKILL
// after a grace period, and then checks that no process of any group is
// left. It returns the services it stopped.
func StopDir(dir string) ([]RunningProc, error) {
	procs, err := Running(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
		_ = syscall.Kill(p.Pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(stopGrace)
	for _, p := range procs {
		for alive(p.Pid, p.Exe) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	var errs []error
	for _, p := range procs {
		for i := 0; i < 50 && (alive(p.Pid, p.Exe) || len(groupMembers(p.Pid)) > 0); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(p.Pid, p.Exe) {
			errs = append(errs, fmt.Errorf("%s (pid %d, %s): %w", p.Name, p.Pid, p.Exe, ErrLeftRunning))
		} else if m := groupMembers(p.Pid); len(m) > 0 {
			errs = append(errs, fmt.Errorf("%s: processes %v of its group: %w", p.Name, m, ErrLeftRunning))
		} else {
			_ = os.Remove(p.PidFile)
		}
	}
	// A stopped detached service is reparented to init, which reaps it
	// when it gets round to it; wait a little so that pgrep shows nothing.
	for _, p := range procs {
		for i := 0; i < 50; i++ {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.Pid)); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return procs, errors.Join(errs...)
}

// Shutdown stops what Main would stop: the package's shared services and
// the MariaDB template. Programs that use the Start* functions call it when
// done.
func Shutdown() { stopShared() }
