package cli

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/sshx"
)

// SSHConfig reads the SSH settings that backup and restore share
// (ssh-host, ssh-port, ssh-user, ssh-key, ssh-known-hosts) into an
// sshx.Config, so both programs turn the same keys into a connection the
// same way.
func SSHConfig(c *ucli.Context) sshx.Config {
	return sshx.Config{
		Host:       c.String("ssh-host"),
		Port:       c.Int("ssh-port"),
		User:       c.String("ssh-user"),
		KeyFile:    c.Path("ssh-key"),
		KnownHosts: c.Path("ssh-known-hosts"),
	}
}
