package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/squirro-bcp/bcp/internal/ui"
)

// ErrUsage marks a usage or configuration error (exit code 2). Wrap it:
// fmt.Errorf("%w: --keep must be positive", cli.ErrUsage), or use Usagef.
var ErrUsage = errors.New("usage or configuration error")

// Usagef returns an error wrapping ErrUsage with the formatted message.
func Usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

// EnvVar is the environment variable of a setting: BCP_<PROGRAM>_<NAME>.
func EnvVar(program, name string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return "BCP_" + strings.ToUpper(r.Replace(program)) + "_" + strings.ToUpper(r.Replace(name))
}

// Flags builds flags that also read BCP_<PROGRAM>_<NAME> and the TOML config
// file. The zero value is not useful: set Program.
type Flags struct{ Program string }

func (f Flags) env(name string) []string { return []string{EnvVar(f.Program, name)} }

// String is a string setting.
func (f Flags) String(name, value, usage string) ucli.Flag {
	return altsrc.NewStringFlag(&ucli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: f.env(name)})
}

// Path is a file or directory setting.
func (f Flags) Path(name, value, usage string) ucli.Flag {
	return altsrc.NewPathFlag(&ucli.PathFlag{Name: name, Value: value, Usage: usage, EnvVars: f.env(name)})
}

// Strings is a list setting (repeat the flag, or a comma list in the
// environment, or a TOML array).
func (f Flags) Strings(name string, value []string, usage string) ucli.Flag {
	var v *ucli.StringSlice
	if len(value) > 0 {
		v = ucli.NewStringSlice(value...)
	}
	return altsrc.NewStringSliceFlag(&ucli.StringSliceFlag{Name: name, Value: v, Usage: usage, EnvVars: f.env(name)})
}

// Int is an integer setting.
func (f Flags) Int(name string, value int, usage string) ucli.Flag {
	return altsrc.NewIntFlag(&ucli.IntFlag{Name: name, Value: value, Usage: usage, EnvVars: f.env(name)})
}

// Int64 is a 64-bit integer setting.
func (f Flags) Int64(name string, value int64, usage string) ucli.Flag {
	return altsrc.NewInt64Flag(&ucli.Int64Flag{Name: name, Value: value, Usage: usage, EnvVars: f.env(name)})
}

// Bool is a boolean setting.
func (f Flags) Bool(name string, value bool, usage string) ucli.Flag {
	return altsrc.NewBoolFlag(&ucli.BoolFlag{Name: name, Value: value, Usage: usage, EnvVars: f.env(name)})
}

// Duration is a duration setting ("90s", "15m", "720h").
func (f Flags) Duration(name string, value time.Duration, usage string) ucli.Flag {
	return altsrc.NewDurationFlag(&ucli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: f.env(name)})
}

// DefaultConfigDir holds each program's default config file,
// <dir>/<program>.toml (a variable only so that tests can point it
// elsewhere).
var DefaultConfigDir = "/etc/squirro-bcp"

// DefaultConfig is the config file a program reads when --config (or
// BCP_<PROGRAM>_CONFIG) does not name one: /etc/squirro-bcp/<program>.toml.
// It may be absent; a file named explicitly must exist.
func DefaultConfig(program string) string {
	return filepath.Join(DefaultConfigDir, program+".toml")
}

// Common returns --config, --log-format and --log-level.
func (f Flags) Common() []ucli.Flag {
	return []ucli.Flag{
		&ucli.PathFlag{Name: "config", Value: DefaultConfig(f.Program), Usage: "TOML config file; keys are the flag names (read only if it exists when not given)", EnvVars: f.env("config")},
		&ucli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json", EnvVars: f.env("log-format")},
		&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn or error", EnvVars: f.env("log-level")},
	}
}

// withConfig appends the common flags to cmd and loads the TOML file named by
// --config (default DefaultConfig(program), skipped when that does not
// exist) before cmd's own Before and Action. It returns cmd. Programs use it
// through Program.Command.
func withConfig(program string, cmd *ucli.Command) *ucli.Command {
	cmd.Flags = append(cmd.Flags, Flags{Program: program}.Common()...)
	load := altsrc.InitInputSourceWithContext(cmd.Flags, func(c *ucli.Context) (altsrc.InputSourceContext, error) {
		p := c.String("config")
		if p == "" || !c.IsSet("config") && notExist(p) {
			return altsrc.NewMapInputSource("", map[any]any{}), nil
		}
		return altsrc.NewTomlSourceFromFile(p)
	})
	before := cmd.Before
	cmd.Before = func(c *ucli.Context) error {
		if err := load(c); err != nil {
			return Usagef("config file %s: %v (check the TOML syntax and that every key is a flag name)", c.String("config"), err)
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
	if cmd.OnUsageError == nil {
		cmd.OnUsageError = OnUsageError
	}
	return cmd
}

func notExist(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// OnUsageError wraps urfave/cli's flag parsing errors with ErrUsage.
func OnUsageError(c *ucli.Context, err error, isSubcommand bool) error {
	return Usagef("%v (see --help)", err)
}

// JSONFlag is the --json flag of commands whose output a script reads.
func JSONFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "json", Usage: "print JSON on stdout instead of text"}
}

// PrintJSON writes v as indented JSON and a newline.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// NewLogger returns a slog logger writing to w in format "text" or "json" at
// level "debug", "info", "warn" or "error".
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, Usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, Usagef("--log-format %q: want text or json", format)
}

// Stderr is where app writes diagnostics: its ErrWriter, or os.Stderr when
// it has none (urfave/cli leaves ErrWriter nil until the app runs).
func Stderr(app *ucli.App) io.Writer {
	if app.ErrWriter != nil {
		return app.ErrWriter
	}
	return os.Stderr
}

// Logger builds the logger the common flags ask for, on Stderr(c.App).
func Logger(c *ucli.Context) (*slog.Logger, error) {
	return NewLogger(Stderr(c.App), c.String("log-format"), c.String("log-level"))
}

// Progress is the progress reporter of a command: bars when stderr is a
// terminal, periodic log lines (every interval; 0: ui's default) otherwise or
// under --log-format json.
func Progress(c *ucli.Context, log *slog.Logger, interval time.Duration) ui.Reporter {
	return ui.New(Stderr(c.App), log, ui.Options{Interval: interval, ForceLog: c.String("log-format") == "json"})
}

// ExitRule maps errors matching Err (errors.Is) to Code.
type ExitRule struct {
	Err  error
	Code int
	tier int // order in a table made by NewExitTable; 0: by Code
}

// ExitTable is a program's error -> exit code table; the first rule that
// matches wins. nil is 0; an error no rule matches is 1; ErrUsage is 2 unless
// the table says otherwise.
type ExitTable []ExitRule

// ExitCodeFunc is the shape of a program's exit-code function.
type ExitCodeFunc func(error) int

// Code returns the exit code for err.
func (t ExitTable) Code(err error) int {
	if err == nil {
		return 0
	}
	for _, r := range t {
		if errors.Is(err, r.Err) {
			return r.Code
		}
	}
	if errors.Is(err, ErrUsage) {
		return 2
	}
	return 1
}

// Run runs app with args (flags may follow the arguments: FlagsFirst) under
// a context cancelled by SIGINT and SIGTERM,
// prints a returned error once on stderr as "<program>: <error>", and
// returns the exit code from codes. main does os.Exit(cli.Run(...)).
// It sets the garbage collector's settings first (TuneGC).
func Run(app *ucli.App, args []string, codes ExitCodeFunc) int {
	TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if app.OnUsageError == nil {
		app.OnUsageError = OnUsageError
	}
	err := app.RunContext(ctx, FlagsFirst(app, args))
	if err != nil {
		fmt.Fprintf(Stderr(app), "%s: %v\n", app.Name, err)
	}
	return codes(err)
}
