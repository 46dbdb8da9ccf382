package main

import (
	"fmt"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/manifest"
)

func newInitCommand() *ucli.Command {
	f := cli.Flags{Program: program}
	return cli.WithConfig(program, &ucli.Command{
		Name:  "init",
		Usage: "create the channel directory and its identity (source = --site, target = --target); idempotent",
		Flags: []ucli.Flag{
			f.Path("channel", "", "channel directory on NFS"),
			f.String("site", "", "this site's name (the channel's source)"),
			f.String("target", "", "the standby site's name"),
			f.String("channel-name", "", "channel name (default: the directory's name)"),
		},
		Action: func(c *ucli.Context) error {
			dir, site, target := c.Path("channel"), c.String("site"), c.String("target")
			if dir == "" || site == "" || target == "" {
				return cli.Usagef("init needs --channel, --site and --target")
			}
			name := c.String("channel-name")
			if name == "" {
				name = filepath.Base(filepath.Clean(dir))
			}
			ch := manifest.Channel{Name: name, Source: site, Target: target}
			if err := ch.Validate(); err != nil {
				return cli.Usagef("%v", err)
			}
			if err := manifest.WriteChannel(dir, ch); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "channel %s at %s\n", ch, dir)
			return nil
		},
	})
}
