package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// What a set must be for push, pull, verify and wait to accept it: of the
// channel expected, and signed by a key of allowed_signers.

// channelFlags are --channel, --source and --target: the channel the
// program expects (empty fields are not checked).
func channelFlags() []ucli.Flag {
	return []ucli.Flag{
		flags.String("channel", "", "expected channel name (e.g. prod-to-bcp); empty: not checked"),
		flags.String("source", "", "expected source site of the channel; empty: not checked"),
		flags.String("target", "", "expected target site of the channel; empty: not checked"),
	}
}

func readChannel(c *ucli.Context) manifest.Channel {
	return manifest.Channel{Name: c.String("channel"), Source: c.String("source"), Target: c.String("target")}
}

func allowedSignersFlag() ucli.Flag {
	return flags.Path("allowed-signers", "", "OpenSSH allowed_signers file naming the keys that may sign manifests (required)")
}

func loadAllowed(path string) (*sshsig.AllowedSigners, error) {
	if path == "" {
		return nil, cli.Usagef("--allowed-signers is required: without it no set can be trusted (BCP_TRANSFER_ALLOWED_SIGNERS or allowed-signers in the config file)")
	}
	a, err := sshsig.LoadAllowedSigners(path)
	if err != nil {
		return nil, cli.Usagef("allowed signers %s: %v", path, err)
	}
	return a, nil
}
