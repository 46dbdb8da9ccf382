// Package redisx flushes the standby's Redis after a restore (stage 9).
//
// Squirro uses Redis only as a cache, so nothing is captured; after the
// stores underneath change, every cached value may be stale. Flush runs
// FLUSHDB on each configured database (or FLUSHALL when none is listed) on
// the leader's Redis; followers replicate the flush. It talks to Redis with
// go-redis/v9; a password is read from a file so it never appears on a
// command line.
package redisx
