// Package cli holds what the three programs (backup, transfer, restore) share
// around urfave/cli/v2, so that every program is configured, logs and exits
// the same way.
//
// Configuration. Every setting is a flag, an environment variable
// BCP_<PROGRAM>_<NAME> (upper case, '-' and '.' become '_') and a key of the
// TOML file named by --config (the flag name is the key, e.g.
// `es-url = "http://127.0.0.1:9200"`). Precedence, highest first: the command
// line, the environment, the config file, the default. Each program declares
// one Program (its name and the former setting names it refuses), builds its
// flags with Program.Flags (prog.Flags().String(...)) and every command with
// Program.Command, which adds --config, --log-format and --log-level, loads
// the TOML file before the action runs (altsrc) and refuses former setting
// names (CheckRenamed). Run lets flags follow a command's arguments
// (FlagsFirst), the same in every program. doc/architecture.md, "How a
// command is written", shows the template of a command file.
//
// SSH. SSHFlags (ssh-host, ssh-port, ssh-user) and SSHKeyFlags (ssh-key,
// ssh-known-hosts, default DefaultKnownHosts) declare the SSH settings once
// for every program; SSHConfig reads them; CheckKnownHosts refuses a
// missing known_hosts file before any change. An empty ssh-user is the user
// running the program, as ssh(1) does.
//
// Logging. Logger(c) builds the log/slog logger the flags ask for, writing
// to stderr (text or JSON). Data goes to stdout, diagnostics to stderr.
//
// --json. Commands whose output a script reads take JSONFlag() and print with
// PrintJSON.
//
// Exit codes. The codes are named (ExitUsage ... ExitRefused); each program
// has one ExitTable in its main package, made by NewExitTable from the
// rules every program shares (BaseExitRules: the manifest's sentinels, the
// site role, the lock, the host key) and its own, mapping sentinel errors
// (errors.Is) to the documented codes in one precedence; Run runs the app,
// prints the error once on stderr and returns the code for os.Exit. Usage and
// configuration errors are wrapped with ErrUsage (code 2) - including the
// ones urfave/cli itself detects (unknown flag, bad value).
package cli
