// Package restart runs the configured restart command (Squirro's own restart
// script) on every node of a site over SSH, all nodes in parallel.
//
// Each node gets its own connection and its own timeout; one slow or broken
// node does not hold up the others or hide their results. The outcome is a
// Result per node (exit status, the tail of its output, how long it took), in
// the order the nodes were configured, plus ErrFailed when any node did not
// succeed. Host keys are always checked (internal/sshx).
package restart
