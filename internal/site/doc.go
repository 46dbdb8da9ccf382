// Package site reads and writes the site role file: a small file on each
// site whose whole content is "active" or "standby" (surrounding white space
// ignored). backup runs only where the role is active; restore changes only a
// standby site; `restore promote` writes "active". Writes are atomic (temp
// file, fsync, rename), so a reader never sees a half-written role.
package site
