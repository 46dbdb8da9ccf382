// Package testenv starts the real servers the project's tests run against:
// MariaDB, Redis, OpenSSH sshd and Elasticsearch 7.17, each on free loopback
// ports in its own directory, and a two-site world ("prod" and "bcp") made of
// them.
//
// How it works:
//
//   - Every server is a child process that leads its own process group. It
//     is started with a parent-death signal (SIGKILL), forked from one OS
//     thread that never exits, so a test binary that panics or is killed
//     never leaves a server behind. Stopping closes the child's stdin, sends
//     SIGTERM to the group and SIGKILL after a grace period.
//   - Elasticsearch is a genuine node started by eslauncher/Launcher.java
//     from the Maven Central jars (scripts/setup.sh fetches them). The
//     launcher also stops when its stdin closes. Start-up takes 30-90 s, so
//     a package pays it once: Elasticsearch and SharedWorld start on first
//     use and Main stops them after the package's tests.
//   - MariaDB's system tables are made once by mariadb-install-db (kept in
//     the user's cache directory, shared by all test binaries) and copied
//     for every server. A user with every privilege and a random password
//     is created by an init file, so tests can check that wrong credentials
//     fail.
//   - sshd gets a fresh ed25519 host key, a client key and a known_hosts
//     line "[127.0.0.1]:PORT key", so clients verify the host key as in
//     production.
//   - Start-up waits for each server to answer (SQL ping, PING, SSH banner,
//     cluster health yellow) for up to StartTimeout; a failure shows the
//     tail of the server's log.
//
// Under CI=true a missing binary fails the test with what is missing and how
// to install it; otherwise the test is skipped (RequireCI).
//
// The Start* functions and StartOptions{Detached: true} serve the testworld
// command (make env-up), whose services outlive it; StopDir stops them again
// from their pid files.
package testenv
