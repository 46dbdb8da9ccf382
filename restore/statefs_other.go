//go:build !linux

package main

// sharedFS cannot tell on this system.
func sharedFS(string) (bool, int64, bool) { return false, 0, false }
