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
// directory of that name), fsync the directories holding them and their
// parents, and remove itself; a directory missing is made first. Every path in the script is quoted; nothing in a name
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
	_, err := f.PublishSteps(ctx, nil, [][]remote.Published{files}, nil)
	return err
}

// PublishSteps carries out the end of a copy over SFTP alone in one tar
// session (StepPublisher; one round trip where phase by phase takes one
// for the copy's last SyncFS and one for each phase): the files of every
// step go into the staging directory, and the stream's script, run once
// tar has extracted all of it, first syncs the file systems holding sync
// (sync -f, one directory per file system), then carries out each step
// as Publish does - the directories holding its files made where
// missing (mkdir -m, exact mode), each file fsynced, renamed over its
// final name, and the directories holding them and their parents
// fsynced - each step only once the one before is durable. The script
// stops at its first failure: nothing is renamed that is not whole and
// durable, and no step is carried out before the ones before it are.
// Failures are answered as Publish's. It lists none of list (the caller
// does).
func (f *sftpFS) PublishSteps(ctx context.Context, sync []string, steps [][]remote.Published, list []string) ([]remote.DirList, error) {
	if f.publishState.Load() == syncUnavailable || f.syncState.Load() == syncUnavailable {
		return nil, fmt.Errorf("%s: no helper, no tar or shell: %w", f.s, remote.ErrNotOffered)
	}
	err := f.publish(ctx, sync, steps)
	switch {
	case err == nil:
		f.publishState.Store(syncWorks)
		return nil, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	f.publishState.Store(syncUnavailable)
	return nil, fmt.Errorf("%s: no helper, and publish through tar and a shell: %w: %w", f.s, err, remote.ErrNotOffered)
}

// publish sends the steps' files and the script in one tar stream and
// waits for the session to end.
func (f *sftpFS) publish(ctx context.Context, sync []string, steps [][]remote.Published) error {
	t, err := f.takeTar(ctx)
	if err != nil {
		return err
	}
	var script []string
	if len(sync) > 0 {
		paths := make([]string, len(sync))
		for i, d := range sync {
			paths[i] = f.s.path(d)
		}
		script = append(script, syncDirsCommand(f.syncCmd, paths))
	}
	for _, files := range steps {
		step, err := f.publishStep(t, files)
		if err != nil {
			return err
		}
		script = append(script, step)
	}
	if err := t.script(strings.Join(script, " && ")); err != nil {
		return fmt.Errorf("write the script through tar: %w", err)
	}
	if err := t.finish(ctx); err != nil {
		return fmt.Errorf("tar, fsync or rename: %w", err)
	}
	return nil
}

// publishStep puts files into t's stream and returns the script that
// publishes them once staged: their directories made where missing, each
// fsynced, renamed over its final name (mv -f -T: a rename(2), never into
// a directory of that name), and their directories and those's parents
// fsynced (a set's directory is made just before its manifest).
func (f *sftpFS) publishStep(t *tarSession, files []remote.Published) (string, error) {
	stage := f.s.path(stageName)
	var fsyncs, renames strings.Builder
	made, synced := map[string]bool{}, map[string]bool{}
	for _, p := range files {
		name, err := t.add(&f.stage.n, p.Data, manifest.PermOf(rel(p.Tmp)))
		if err != nil {
			return "", fmt.Errorf("write %s through tar: %w", p.Name, err)
		}
		staged := sshx.Quote(shellPath(path.Join(stage, name)))
		fsyncs.WriteString(" " + staged)
		renames.WriteString(" && " + f.mvCmd + " -f -T -- " + staged + " " + sshx.Quote(shellPath(f.s.path(p.Name))))
		dir := path.Dir(rel(p.Name))
		made[dir] = dir != "."
		synced[shellPath(f.s.path(dir))], synced[shellPath(f.s.path(path.Dir(dir)))] = true, true
	}
	var mkdirs []string
	for _, d := range sortedKeys(made) {
		if made[d] {
			mkdirs = append(mkdirs, d)
		}
	}
	script := "sync --" + fsyncs.String() + renames.String() + " && sync --"
	if len(mkdirs) > 0 {
		script = f.mkdirCommand(mkdirs) + " && " + script
	}
	for _, d := range sortedKeys(synced) {
		script += " " + sshx.Quote(d)
	}
	return script, nil
}
