//go:build !linux

package mover

import "context"

// SyncFS is not available here: the mover fsyncs every file.
func (l *Local) SyncFS(context.Context, []string) error { return ErrNoSyncFS }

// localSyncFS: Local.SyncFS does not work here (canBatch need not ask).
const localSyncFS = false
