package mover

import (
	"context"

	"github.com/squirro-bcp/bcp/manifest"
)

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
