// Package cli holds what the three programs (backup, transfer, restore) share
// around urfave/cli/v2, so that every program is configured, logs and exits
// the same way.
//
// Configuration. Every setting is a flag, an environment variable
// BCP_<PROGRAM>_<NAME> (upper case, '-' and '.' become '_') and a key of the
// TOML file named by --config (the flag name is the key, e.g.
// `es-url = "http://127.0.0.1:9200"`). Precedence, highest first: the command
// line, the environment, the config file, the default. Build flags with a
// Flags value (Flags{Program: "backup"}.String(...)) and wrap each command
// with WithConfig, which adds --config, --log-format and --log-level and
// loads the TOML file before the action runs (altsrc).
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
