// Command packaging builds the squirro-bcp .deb and .rpm packages (make
// package): the three programs in /usr/bin, their man pages and bash / zsh
// completion, the systemd units (not enabled), the example configs as
// /etc/squirro-bcp/{backup,transfer,restore}.toml that an upgrade never
// overwrites, every example under /usr/share/squirro-bcp/examples (the cron
// files there, disabled), and /var/lib/squirro-bcp and /var/log/squirro-bcp.
// The configs and those directories belong to root and the group
// squirro-bcp, which the one maintainer script (preinstall.sh) creates; the
// account that runs transfer from cron joins it. The layout is nfpm.yaml
// beside this file.
//
// How. For each architecture the programs are built with CGO_ENABLED=0 (one
// static binary runs on Debian and RHEL alike) and -X main.version,
// main.commit, so --version prints the package version and commit. The man
// pages and completion scripts come from the programs themselves (`<program>
// generate`, derived from their urfave/cli definitions), run from the build
// for this machine's architecture: they are the same for every architecture.
// nFPM (github.com/goreleaser/nfpm/v2), used as a library, writes the .deb
// and .rpm from nfpm.yaml; each package is written under a .tmp- name and
// renamed when complete, so a package in the output directory is never
// half-written.
//
// It lives in a module of its own so that nFPM's dependencies never reach
// the programs' modules.
package main
