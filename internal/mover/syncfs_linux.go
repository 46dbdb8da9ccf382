package mover

import (
	"context"

	"github.com/squirro-bcp/bcp/manifest"
)

// localSyncFS: Local.SyncFS works wherever the program runs (canBatch
// need not ask).
const localSyncFS = true

// SyncFS calls syncfs(2) once per file system among dirs
// (manifest.SyncFS): every file written there so far, and every rename, is
// durable when it returns.
func (l *Local) SyncFS(_ context.Context, dirs []string) error {
	paths := make([]string, len(dirs))
	for i, d := range dirs {
		paths[i] = l.path(d)
	}
	return manifest.SyncFS(paths...)
}
