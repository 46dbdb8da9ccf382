package mover

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// Publish carries out a phase of a few small files over SFTP alone in
// one tar session (sftpstage.go), one round trip where the usual way
// takes four (the stream's end, sync -f, the renames, sync -f): the
// files go into the staging directory as a batch's do, and the stream
// ends with a script that tar's session runs once tar has extracted the
// whole stream and exited 0 - fsync each file (sync FILE...), rename
// each over its final name (mv -f -T: a rename(2), never into a
// directory of that name), fsync the directories holding them, and
// remove itself. Every path in the script is quoted; nothing in a name
// is run. A file is renamed only once it is whole and durable, so a
// failure or a kill leaves nothing half-written under a final name (what
// stays staged goes with the next run's).
//
// It fsyncs the few files and directories instead of syncing the whole
// file system: on a disk busy with others' writes a syncfs(2) waits for
// them too (0.2-0.4 s each on the shared benchmark machine, two per
// phase).
//
// Where there is no tar or shell, or the script fails (no GNU mv -T, a
// final name that is a directory), it returns an error wrapping
// remote.ErrNotOffered, and does so for the rest of the run without
// trying again: the mover goes the usual way, which reports a real
// failure as its own.
func (f *sftpFS) Publish(ctx context.Context, files []remote.Published) error {
	if f.publishState.Load() == syncUnavailable || f.syncState.Load() == syncUnavailable {
		return fmt.Errorf("%s: no helper, no tar or shell: %w", f.s, remote.ErrNotOffered)
	}
	err := f.publish(ctx, files)
	switch {
	case err == nil:
		f.publishState.Store(syncWorks)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	f.publishState.Store(syncUnavailable)
	return fmt.Errorf("%s: no helper, and publish through tar and a shell: %w: %w", f.s, err, remote.ErrNotOffered)
}

// publish sends files and the script in one tar stream and waits for the
// session to end.
func (f *sftpFS) publish(ctx context.Context, files []remote.Published) error {
	st := &f.stage
	t, err := f.takeTar(ctx)
	if err != nil {
		return err
	}
	stage := f.s.path(stageName)
	var fsyncs, renames strings.Builder
	dirs := map[string]bool{}
	for _, p := range files {
		name, err := t.add(&st.n, p.Data, manifest.PermOf(rel(p.Tmp)))
		if err != nil {
			return fmt.Errorf("write %s through tar: %w", p.Name, err)
		}
		staged := sshx.Quote(shellPath(path.Join(stage, name)))
		fsyncs.WriteString(" " + staged)
		renames.WriteString(" && " + f.mvCmd + " -f -T -- " + staged + " " + sshx.Quote(shellPath(f.s.path(p.Name))))
		dirs[shellPath(f.s.path(path.Dir(p.Name)))] = true
	}
	script := "sync --" + fsyncs.String() + renames.String() + " && sync --"
	for _, d := range sortedKeys(dirs) {
		script += " " + sshx.Quote(d)
	}
	if err := t.script(script); err != nil {
		return fmt.Errorf("write the script through tar: %w", err)
	}
	if err := t.finish(ctx); err != nil {
		return fmt.Errorf("tar, fsync or rename: %w", err)
	}
	return nil
}
