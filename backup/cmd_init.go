package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/manifest"
)

func newInitCommand() *ucli.Command {
	own := []ucli.Flag{
		flags.String("target", "", "the other site's name (the channel's target)"),
		flags.String("channel-name", "", "channel name (default: the directory's name)"),
		flags.String("reverse-channel-name", "", "reverse channel name (default: its directory's name)"),
	}
	return prog.Command(&ucli.Command{
		Name:  "init",
		Usage: "day one: create both channels of the pair on this site's NFS and check everything a failover and a failback need; idempotent",
		Description: `Creates channel (source = site, target = --target) and reverse-channel (the other
direction) if they do not exist, then checks, for this site: the role file, the signing key,
allowed_signers (this site's key trusted for manifests and epoch records, and another site's
key), Elasticsearch's path.repo holding both channels' es/, and the transfer and restore
config files (restore.toml naming the reverse channel as its channel). Every missing piece is
listed with what to do (exit 3); run it on both sites until both say ok.

` + exitHelp,
		Flags: append(own, configFlags()...),
		Action: func(c *ucli.Context) error {
			cfg, err := configFromContext(c)
			if err != nil {
				return err
			}
			return runInit(c.Context, initOptions{cfg: cfg, target: c.String("target"), name: c.String("channel-name"),
				reverseName: c.String("reverse-channel-name")}, c.App.Writer)
		},
	})
}

// initOptions are the settings of `backup init`.
type initOptions struct {
	cfg                       *config
	target, name, reverseName string
}

func runInit(ctx context.Context, o initOptions, out io.Writer) error {
	cfg := o.cfg
	if o.target == "" {
		return cli.Usagef("init needs --target (the other site's name)")
	}
	p := &preflight{}
	ch := manifest.Channel{Name: o.name, Source: cfg.Site, Target: o.target}
	if ch.Name == "" {
		ch.Name = filepath.Base(filepath.Clean(cfg.Channel))
	}
	if err := ch.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	createChannel(p, "channel", cfg.Channel, ch)
	if cfg.ReverseChannel == "" {
		p.add(Check{Name: "reverse channel", Err: fmt.Errorf("reverse-channel is not set"),
			Fix: "set reverse-channel in backup.toml to the other direction's directory on this site's NFS (e.g. /mnt/bcp/" + o.target + "-to-" + cfg.Site + "): failover, failback and fencing need it"})
	} else {
		rev := manifest.Channel{Name: o.reverseName, Source: o.target, Target: cfg.Site}
		if rev.Name == "" {
			rev.Name = filepath.Base(filepath.Clean(cfg.ReverseChannel))
		}
		createChannel(p, "reverse channel", cfg.ReverseChannel, rev)
	}
	checkSetup(ctx, cfg, p)
	for _, c := range p.Checks {
		switch {
		case !c.OK:
			fmt.Fprintf(out, "MISSING %s: %v\n        what to do: %s\n", c.Name, c.Err, c.Fix)
		case c.Warn:
			fmt.Fprintf(out, "warn    %s: %s\n", c.Name, c.Detail)
		default:
			fmt.Fprintf(out, "ok      %s: %s\n", c.Name, c.Detail)
		}
	}
	if f := p.failed(); len(f) > 0 {
		return &PreflightError{Failed: f}
	}
	fmt.Fprintf(out, "site %s is set up for both directions with %s\n", cfg.Site, o.target)
	return nil
}

// createChannel makes the channel directory and identity unless they exist,
// and fails the check when an existing one is another channel.
func createChannel(p *preflight, what, dir string, ch manifest.Channel) {
	if have, err := manifest.ReadChannel(dir); err == nil {
		if have != ch {
			p.add(Check{Name: what, Err: fmt.Errorf("%w: %s is channel %s, want %s", manifest.ErrNotForUs, dir, have, ch),
				Fix: "point the setting at the right directory, or check --target"})
			return
		}
		p.add(Check{Name: what, Detail: fmt.Sprintf("%s at %s (exists)", ch, dir)})
		return
	}
	if err := manifest.WriteChannel(dir, ch); err != nil {
		p.add(Check{Name: what, Err: err, Fix: "mount the NFS share read-write for this user"})
		return
	}
	p.add(Check{Name: what, Detail: fmt.Sprintf("%s at %s (created)", ch, dir)})
}
