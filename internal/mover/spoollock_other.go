//go:build !unix

package mover

import "os"

// lockSpool cannot lock here: every spool directory looks in use, and
// none is removed as stale.
func lockSpool(d *os.File, wait bool) bool { return wait }
