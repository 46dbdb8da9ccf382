package filetree

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoSpace is returned (wrapped) when the target's file system has not
// enough free space: before anything is written (CheckSpace), or when a
// write failed for want of it (also over SFTP, whose server says only
// "Failure").
var ErrNoSpace = errors.New("not enough free space on the target")

// SpaceReporter is implemented by targets that can tell the space free to
// them on their file system (statvfs(2); statvfs@openssh.com over SFTP).
type SpaceReporter interface {
	FreeSpace() (int64, error)
}

// FreeSpace is the space the local target's file system has for this user.
func (l *LocalTarget) FreeSpace() (int64, error) { return freeAt(l.dir) }

func freeAt(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// CheckSpaceAt is CheckSpace for a local target that does not exist yet,
// to be made below dir: every file is added, so total is what is written.
func CheckSpaceAt(dir string, total int64) error {
	free, err := freeAt(dir)
	if err != nil || total <= free {
		return nil
	}
	return fmt.Errorf("%w: %s needs %d bytes for a new tree, and its file system has %d free; nothing was changed (free space there, or exclude paths)",
		ErrNoSpace, dir, total, free)
}

// FreeSpace asks the SFTP server (statvfs@openssh.com).
func (s *SFTPTarget) FreeSpace() (int64, error) {
	st, err := s.c.StatVFS(s.dir)
	if err != nil {
		return 0, fmt.Errorf("statvfs %s: %w", s, err)
	}
	return int64(st.Frsize * st.Bavail), nil
}

// CheckSpace returns an error wrapping ErrNoSpace when Apply with opts would
// write more bytes than the target has free, so that a restore can refuse
// before its first stage changes anything. total is the size of every file
// of the set: when that fits, nothing more is asked; otherwise a dry run of
// Apply counts the bytes that would really be written (files added or
// replaced; a replaced file's old version is freed as soon as the new one
// is in place, and removals come last, so this is the peak). A target that
// cannot tell its free space passes.
func CheckSpace(ctx context.Context, opts ApplyOptions, total int64) error {
	sr, ok := opts.Target.(SpaceReporter)
	if !ok {
		return nil
	}
	free, err := sr.FreeSpace()
	if err != nil || total <= free {
		return nil
	}
	opts.DryRun, opts.Progress, opts.MaxChanges = true, nil, 1
	st, err := Apply(ctx, opts)
	if err != nil {
		return err
	}
	if st.Bytes > free {
		return fmt.Errorf("%w: %s needs %d bytes for %d files added and %d replaced, and has %d free; nothing was changed (free space there, or exclude paths)",
			ErrNoSpace, opts.Target, st.Bytes, st.Added, st.Replaced, free)
	}
	return nil
}

// noSpace explains a failed write: the local file system says ENOSPC, an
// SFTP server only "Failure", so the target's free space is asked. It
// returns err wrapped with ErrNoSpace when space is what is missing.
func noSpace(t Target, size int64, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	sr, ok := t.(SpaceReporter)
	if !ok {
		return err
	}
	if free, ferr := sr.FreeSpace(); ferr == nil && free < max(size, 1<<20) {
		return fmt.Errorf("%w: %s has %d bytes free: %w", ErrNoSpace, t, free, err)
	}
	return err
}
