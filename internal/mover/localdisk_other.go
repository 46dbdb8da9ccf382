//go:build !linux

package mover

// onLocalDisk is false where the file system type is not known: no cap.
func onLocalDisk(string) bool { return false }
