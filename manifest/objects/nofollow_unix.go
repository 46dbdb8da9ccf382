//go:build unix

package objects

import "syscall"

// noFollow makes Open refuse an object that is a symbolic link.
const noFollow = syscall.O_NOFOLLOW
