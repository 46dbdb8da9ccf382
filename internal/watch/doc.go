// Package watch tells a waiting program that a channel directory may have
// changed.
//
// It combines two sources. fsnotify (inotify on Linux) watches every
// directory of the channel except pins/ and locks/ (a mover may bring a
// set's last piece anywhere, deep in es/indices too); directories created
// below a watched one are added as they appear. If the kernel refuses more
// watches, the poll still sees everything. Events
// are debounced: a burst of writes (a mover copying hundreds of objects)
// produces one trigger shortly after the burst goes quiet. Because NFS clients
// do not see changes made by other NFS clients or by the filer, a slow poll
// triggers as well, as a safety net. A trigger says only "look again"; the
// caller decides what changed (list and verify the sets), so a lost or
// spurious event costs nothing but a look.
package watch
