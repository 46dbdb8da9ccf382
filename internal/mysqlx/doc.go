// Package mysqlx runs the MySQL/MariaDB client programs the way the
// programs need them, locally or on the cluster leader over SSH (sshx), and
// talks SQL through go-sql-driver/mysql for checks.
//
// Credentials never appear on a command line or in a log: they go into a
// MySQL option file ([client] user, password, host, port, socket) created
// with mode 0600 and passed as --defaults-extra-file. Locally the file lives
// in a private temporary directory and is removed afterwards; over SSH a
// small POSIX sh wrapper creates it under umask 077 with mktemp, fills it
// from the first bytes of the session's stdin, removes it on exit, and then
// runs the client. An operator may instead name an existing option file on
// the host that runs the client (DefaultsFile).
//
// Dump runs mysqldump --single-transaction --routines --triggers --events
// --databases <dbs> and streams its output to a writer (backup compresses
// it with zstd straight into the object store). The row counts per table are
// counted from the dump stream itself, as it passes, by a small scanner that
// follows INSERT statements (quotes, escapes, parentheses): they are exactly
// the rows the standby will load, from the same consistent snapshot, at no
// extra query cost. Tables the dump holds no INSERT for count 0; the list of
// tables comes from information_schema before the dump.
//
// The restore side adds load.go (mysql < dump).
package mysqlx
