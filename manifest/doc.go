// Package manifest defines the files that the three programs (backup,
// transfer, restore) exchange through a channel directory on NFS, and
// decides whether a set in such a directory may be restored. The on-disk
// format and its rules are in DESIGN.md beside this file.
//
// A channel holds content-addressed objects (objects/<aa>/<sha256>), the
// Elasticsearch repository (es/) and one directory per set holding
// manifest.json and its SSHSIG signature. A manifest is small: the file
// lists of the captured trees and of the Elasticsearch repository live in
// objects named by their SHA-256, so the one signature over the manifest
// covers every byte of the set (a Merkle chain of depth two).
//
// Writing: objects first (package objects: temporary name, fsync, rename),
// then Publish writes the manifest and only then its signature, each
// atomically and never replacing an existing file.
//
// Verify classifies a set with the cheapest test first and never lets an
// unauthenticated byte steer it:
//
//  1. Read manifest.json (at most MaxManifestSize) and manifest.json.sig;
//     check the signature against allowed_signers. A missing file means a
//     mover is not done (incomplete); a bad signature means not authentic.
//  2. Decode strictly (unknown major version refused), check that the set
//     id matches the signed sequence and time, that the channel is the
//     expected one, and that the sequence is newer than what the caller has.
//  3. Hash each list object (it is small compared with the data it names),
//     then stream it line by line to stat every file it names: missing files
//     make the set incomplete, wrong sizes corrupt. Nothing is hashed while
//     something is missing, so a set still being copied costs only stats.
//  4. Feed every file again into a pool of workers (one per CPU) that hash
//     each file once with a 1 MiB buffer. Phase 3 spooled the parsed list
//     lines compactly to an unlinked temporary file outside the channel, so
//     the lists are parsed once (without a temporary directory they are
//     parsed again). Memory stays bounded: lists are never held, only a
//     bounded set of object names already hashed in this run
//     (deduplicated content is hashed once).
//
// Every path under the channel is opened through os.Root, so neither ".."
// nor a symbolic link (a symlinked directory on the way included) can lead
// a read outside the channel; list paths are checked by CleanPath before use.
//
// The identity cache (VerifyOptions.Cache) remembers, per device and inode,
// the size, mtime and ctime (nanoseconds) a file had when its content was
// found to have a given SHA-256. A later run that finds the same identity
// and expects the same SHA-256 skips reading the file; any change, even a
// same-size in-place write (which changes ctime), makes it hash again. The
// cache lives outside the channel, is written atomically and is bounded
// (CacheMax). Its file is in sections (the lists, then the files by the
// first hex digit of their SHA-256), each with its own checksum, and
// Verify holds one section at a time, hashing the files section by
// section; a section whose checksum does not match is not used, nor any
// after it.
package manifest
