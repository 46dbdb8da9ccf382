package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/metrics"
	"github.com/squirro-bcp/bcp/manifest"
)

func newRunCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "run",
		Usage: "preflight, dump MySQL, capture files, snapshot Elasticsearch, publish a signed set",
		Description: "Safe to run from cron on every prod node: a node that is not the leader exits 0 with one line.\n" +
			"Writes the Prometheus textfile (metrics-file) and alerts on failure (alert-*).\n" + exitHelp,
		Flags: append(configFlags(), &ucli.BoolFlag{Name: "dry-run", Usage: "run the preflight and say what would be done"}, cli.JSONFlag()),
		Action: func(c *ucli.Context) error {
			cfg, err := configFromContext(c)
			if err != nil {
				return err
			}
			log, err := cli.Logger(c)
			if err != nil {
				return err
			}
			rep := cli.Progress(c, log, cfg.LogInterval)
			return runRun(c.Context, runOptions{cfg: cfg, dryRun: c.Bool("dry-run"), json: c.Bool("json"), log: log, progress: rep}, c.App.Writer)
		},
	})
}

// runOptions are the settings of `backup run`.
type runOptions struct {
	cfg      *config
	dryRun   bool
	json     bool
	log      *slog.Logger
	progress manifest.Progress
}

// runRun runs a backup and reports it: stdout, metrics, alert.
func runRun(ctx context.Context, o runOptions, stdout io.Writer) error {
	start := time.Now()
	res, err := runBackup(ctx, backupOptions{cfg: o.cfg, dryRun: o.dryRun, progress: o.progress, log: o.log})
	if err == nil && (res.Skipped || res.DryRun) {
		if o.json {
			return cli.PrintJSON(stdout, res)
		}
		if res.Skipped {
			fmt.Fprintf(stdout, "not the leader, nothing to do: %s\n", res.Note)
			return nil
		}
		printChecks(stdout, res.Checks)
		fmt.Fprintln(stdout, "would:")
		for _, p := range res.Plan {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
		return nil
	}
	if !o.dryRun {
		report(ctx, o, res, err, start)
	}
	if err != nil {
		return err
	}
	if o.json {
		return cli.PrintJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "set %s published in %s\n", res.SetID, o.cfg.Channel)
	return nil
}

// report writes the metrics textfile and sends an alert on failure. Their
// own failures are logged, never hide the run's result.
func report(ctx context.Context, o runOptions, res *runResult, runErr error, start time.Time) {
	cfg := o.cfg
	channel := filepath.Base(cfg.Channel)
	if cfg.MetricsFile != "" {
		r := metrics.Run{Program: program, Channel: channel, Time: time.Now(), Success: runErr == nil}
		if res != nil {
			r.Stages = res.Stages
			r.Stages = append(r.Stages, metrics.Stage{Name: "total", Duration: time.Since(start)})
		}
		if err := metrics.Write(cfg.MetricsFile, r); err != nil {
			o.log.Warn("metrics", "err", err)
		}
	}
	if runErr != nil && cfg.Alert.Enabled() {
		host, _ := os.Hostname()
		summary, detail, _ := strings.Cut(runErr.Error(), "\n")
		a := alert.Alert{Program: program, Command: "run", Host: host, Time: time.Now(), ExitCode: exitCodes.Code(runErr),
			Summary: summary, Detail: detail + "\nchannel: " + cfg.Channel}
		if err := alert.Send(context.WithoutCancel(ctx), cfg.Alert, a); err != nil {
			o.log.Error("alert not delivered", "err", err)
		}
	}
}

func printChecks(w io.Writer, checks []Check) {
	for _, c := range checks {
		switch {
		case !c.OK:
			fmt.Fprintf(w, "FAIL  %-26s %v\n", c.Name, c.Err)
			if c.Fix != "" {
				fmt.Fprintf(w, "      %-26s what to do: %s\n", "", c.Fix)
			}
		case c.Warn:
			fmt.Fprintf(w, "warn  %-26s %s\n", c.Name, c.Detail)
		default:
			fmt.Fprintf(w, "ok    %-26s %s\n", c.Name, c.Detail)
		}
	}
}
