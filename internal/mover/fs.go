package mover

import (
	"context"
	"errors"
	"io"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// FS is one end of a copy: a channel directory on a local (or NFS) mount or
// on an SFTP server. Names are slash-separated and relative to the root;
// "" and "." are the root itself.
type FS interface {
	// String names the place for messages, e.g. "sftp://bcp@host:22/mnt/bcp".
	String() string
	// ReadDir lists one directory with the size and kind of each entry, in one
	// request per directory (never a stat per file). A missing directory is an
	// error that matches fs.ErrNotExist.
	ReadDir(ctx context.Context, dir string) ([]Entry, error)
	// Open opens a file for reading.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Create creates or truncates a file for writing. The mover only ever
	// creates temporary names (.tmp-*) and renames them into place. A
	// backend that pipelines (the SFTP helper) may report an error creating
	// or writing the file only from File.Sync or File.Close.
	Create(ctx context.Context, name string) (File, error)
	// MkdirAll creates dir and its parents.
	MkdirAll(ctx context.Context, dir string) error
	// Rename moves from to to, replacing to atomically if it exists.
	Rename(ctx context.Context, from, to string) error
	// Remove removes a file or an empty directory.
	Remove(ctx context.Context, name string) error
	// Close releases connections.
	Close() error
}

// File is a file being written.
type File interface {
	io.Writer
	// Sync makes the written data durable (fsync).
	Sync() error
	Close() error
}

// DirSyncer is implemented by backends that can make a directory's entries
// durable after a rename (fsync of the directory). SFTP has no such request;
// OpenSSH's server renames with rename(2), which the file system orders.
type DirSyncer interface {
	SyncDir(ctx context.Context, dir string) error
}

// FSSyncer is implemented by backends that can make everything written so
// far to the file systems holding dirs durable in one step (syncfs(2)),
// instead of one fsync per file. The mover writes a batch of small files
// under their temporary names without fsync, calls SyncFS, and only then
// renames them; one more SyncFS makes the renames durable before the next
// phase. A backend that turns out unable to (e.g. an SFTP account that may
// not run commands) returns an error wrapping ErrNoSyncFS, and the mover
// fsyncs every file instead.
type FSSyncer interface {
	SyncFS(ctx context.Context, dirs []string) error
}

// ErrNoSyncFS says that a backend cannot sync a whole file system.
var ErrNoSyncFS = errors.New("cannot sync the file system (syncfs)")

// FileWriter is implemented by destinations that write a whole small file
// in one request (the SFTP helper): create or truncate, write, fsync if
// asked, close, with any error of those. The mover uses it for files it
// holds in memory. Implementations do not keep data. One that cannot at the
// moment (SFTP without the helper) returns errNoFileWriter, and the mover
// writes through Create.
type FileWriter interface {
	WriteFile(ctx context.Context, name string, data []byte, fsync bool) error
}

// LaterWriter is implemented by destinations that can take the writes and
// renames of a batch of small files without waiting for each one's result
// (the SFTP helper): the worker goes on to its next file at once, and one
// remote.Later.Wait per batch collects the results - 100k files are then
// not 200k goroutines blocked and woken one by one. Writes are without
// fsync: the batch is made durable by FSSyncer before its renames. One
// that cannot at the moment returns errNoFileWriter.
type LaterWriter interface {
	WriteFileLater(ctx context.Context, name string, data []byte, l *remote.Later) error
	RenameLater(ctx context.Context, from, to string, l *remote.Later) error
}

// Publisher is implemented by destinations that can carry out the whole
// of a phase of a few small files in one request (the SFTP helper): write
// each under its temporary name with fsync, rename each over its final
// name, fsync the directories holding them. A failure leaves nothing
// half-written under a final name. One that cannot at the moment (an
// older helper) returns an error wrapping remote.ErrNotOffered.
type Publisher interface {
	Publish(ctx context.Context, files []remote.Published) error
}

// DirsLister is implemented by destinations that can list many directories
// in one request (the SFTP helper), for each its listing or why it could
// not list it. One that cannot at the moment (an older helper) returns an
// error wrapping remote.ErrNotOffered.
type DirsLister interface {
	ReadDirs(ctx context.Context, dirs []string) ([]remote.DirList, error)
}

// errNoFileWriter says that a FileWriter cannot write whole files here.
var errNoFileWriter = errors.New("no whole-file writes")

// Digester is implemented by destinations that can fingerprint directories
// where they are (remote.Digest of each listing) without sending the
// listings. A run whose set is still the one verified last time then
// compares a few hundred digests instead of every entry (see setRecord). It
// returns an error wrapping ErrNoDigest when it cannot (an SFTP destination
// without the helper).
type Digester interface {
	DirDigests(ctx context.Context, dirs []string) ([][32]byte, error)
}

// ErrNoDigest says that a destination cannot fingerprint directories.
var ErrNoDigest = errors.New("cannot fingerprint directories")

// NameLister is implemented by backends that can list a directory more
// cheaply without sizes (Entry.Size is -1).
type NameLister interface {
	ReadDirNames(ctx context.Context, dir string) ([]Entry, error)
}

// Entry is one directory entry: Name, Size (-1 from NameLister), Dir and
// ModTime. It is the helper's own type, so that a listing from it needs no
// copy.
type Entry = remote.Entry

// ErrCorrupt is returned (wrapped) when a copied file's SHA-256 or size does
// not match what the manifest says: the source file is damaged or changed
// under us. Nothing was renamed into place. It is a kind of
// manifest.ErrCorrupt (errors.Is holds, exit code 5).
var ErrCorrupt = manifest.NewCorrupt("content does not match the manifest")

// ErrSourceIncomplete is returned (wrapped) when no set at the source is
// complete (every file present with its size, signature valid): nothing is
// forwarded. Try again once the source's backup has published. Where the
// source has sets, the error also wraps why the newest cannot be forwarded
// (manifest.ErrIncomplete, ErrNotAuthentic, ErrNotForUs, ErrCorrupt, ...):
// a caller's exit-code table that checks those first tells a set still
// arriving from one that never will.
var ErrSourceIncomplete = errors.New("no complete set at the source")

// ErrSourceChanged is returned (wrapped) when a file the chosen set needs
// vanished from the source while copying (retention, or Elasticsearch moved
// on). The destination still shows only whole sets; rerun to copy the newer
// set.
var ErrSourceChanged = errors.New("source changed while copying")
