//go:build linux

package mover

import "golang.org/x/sys/unix"

// onLocalDisk reports whether dir is on a file system of a local disk
// (ext4, XFS, btrfs, tmpfs, overlayfs...), where creating a file is kernel
// work on this host's CPUs. NFS, SMB, FUSE and anything not known: false.
func onLocalDisk(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.TMPFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC,
		unix.BCACHEFS_SUPER_MAGIC:
		return true
	}
	return false
}
