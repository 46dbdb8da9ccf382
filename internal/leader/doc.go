// Package leader says whether this node is the one of its cluster that
// works. backup and restore are installed on every node of a site and run
// from cron or as a service everywhere; only the leader acts, the others
// exit 0 (backup) or stay idle (restore watch).
//
// Modes (setting leader-mode):
//   - none: this node always works (a single-node site).
//   - static: leader-host names the leader; this node works when its
//     node-name is that name.
//   - mysql: the node whose MySQL is writable (@@read_only = 0) works; the
//     replicas of a MariaDB primary/replica pair are read-only.
//   - http: Squirro's cluster service names the leader: GET leader-url, the
//     dotted JSON field leader-json-field of the answer is the leader's node
//     name. It may need a bearer token (leader-token-file) or basic auth
//     (leader-username, leader-password-file) and a private CA
//     (leader-ca-file). Secret files must not be readable by group or
//     others (0600), and their content never appears in a message.
//
// An unset leader-mode means http when leader-url is set, none otherwise,
// so a config that only names the URL keeps working.
//
// The answer is asked for once per run; the run's lock (package lock) is
// what keeps two nodes from working at once while the leader moves.
package leader
