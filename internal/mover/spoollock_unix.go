//go:build unix

package mover

import (
	"os"
	"syscall"
)

// lockSpool takes an exclusive lock on the open spool directory d, held
// until d is closed; wait says whether to wait for it. false: another
// run holds it.
func lockSpool(d *os.File, wait bool) bool {
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(d.Fd()), how)
		if err != syscall.EINTR {
			return err == nil
		}
	}
}
