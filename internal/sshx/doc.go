// Package sshx opens SSH connections the way every program of this project
// must: host keys are always checked against an OpenSSH known_hosts file (a
// mismatch or an unknown host is an error that shows the fingerprint), the
// client authenticates with a private key file or through ssh-agent, and
// idle connections are kept alive. On top of a connection it runs commands
// (with their exit status) and opens SFTP sessions tuned for throughput.
package sshx
