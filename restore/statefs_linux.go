package main

import "golang.org/x/sys/unix"

// sharedFS reports whether dir is on a file system that several hosts can
// mount (NFS, SMB, a cluster or FUSE file system), and its type when it is
// not; ok is false when the type cannot be read.
func sharedFS(dir string) (shared bool, fstype int64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, 0, false
	}
	switch uint32(st.Type) {
	case unix.NFS_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC, unix.SMB_SUPER_MAGIC,
		unix.FUSE_SUPER_MAGIC, unix.CEPH_SUPER_MAGIC, unix.OCFS2_SUPER_MAGIC, unix.AFS_SUPER_MAGIC,
		0x01161970, // gfs2
		0x47504653: // gpfs
		return true, int64(st.Type), true
	}
	return false, int64(st.Type), true
}
