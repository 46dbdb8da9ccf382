// Command demo is `make demo`: the whole replication cycle on one machine,
// with real services.
//
// It builds the three programs into bin/, starts a two-site world (prod and
// bcp, each with its own Elasticsearch 7.17, MariaDB, Redis and sshd, and a
// directory standing in for its NFS mount), fills prod with sample data
// (documents in Elasticsearch indices, MySQL schemas with rows, a storage
// tree with files, a config directory), and then runs the programs exactly
// as an operator would, each with its own TOML config file:
//
//	bin/backup run     on prod, into prod's channel prod-to-bcp
//	bin/transfer push  prod's channel to bcp's NFS over SFTP
//	bin/restore run    on bcp
//
// Finally it reads both sites and prints them side by side: documents per
// index, rows (and CHECKSUM TABLE) per table, and every file with its
// SHA-256, plus the time of each stage. It exits 0 only if both sites hold
// the same data, and stops everything it started, also on Ctrl-C.
//
// Each site is configured as doc/runbook.md's "Day one" says (sites.go):
// <dir>/<site>/etc stands for /etc/squirro-bcp with backup.toml,
// transfer.toml, restore.toml, the role file, the site's signing key and
// allowed_signers with both sites' keys; each site's NFS holds both
// channels (backup init on both sites creates them and checks the rest).
// Programs run "on" a site with BCP_<PROGRAM>_CONFIG naming its files.
//
// With -drill RUNBOOK (make drill) it runs the runbook instead of the one
// cycle: every "prod$ ..." and "bcp$ ..." line of its code blocks, on that
// site, as written, with the exit code the line names, and the
// "<!-- drill: ... -->" steps between them (users write; both sites hold
// the same data; a site is unchanged) - failover, a late set from the old
// active site refused by its epoch, failback, return to normal (drill.go).
//
// Squirro's own parts are stood in for honestly: the restart command is a
// shell script run over SSH on the bcp node, the health page is an HTTP
// server on loopback.
package main
