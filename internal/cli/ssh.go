package cli

import (
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/sshx"
)

// DefaultKnownHosts is the known_hosts file every program checks SSH host
// keys against unless ssh-known-hosts names another.
const DefaultKnownHosts = "/etc/squirro-bcp/known_hosts"

// SSHKeyFlags are ssh-key and ssh-known-hosts: how this host logs in and
// which host keys it trusts, the same in every program. Host keys are
// always verified.
func SSHKeyFlags(f Flags) []ucli.Flag {
	return []ucli.Flag{
		f.Path("ssh-key", "", "SSH private key file; empty: ssh-agent (SSH_AUTH_SOCK)"),
		f.Path("ssh-known-hosts", DefaultKnownHosts, "OpenSSH known_hosts file with the hosts' keys; host keys are always verified"),
	}
}

// SSHFlags are the settings of the one host backup and restore reach over
// SSH (host says which and what for): ssh-host, ssh-port, ssh-user, and
// SSHKeyFlags. ssh-user defaults to empty, the user running the program, as
// ssh(1) does: no program logs in as root unless told to. (transfer takes
// host, port and user from its sftp:// URLs.)
func SSHFlags(f Flags, host string) []ucli.Flag {
	return append([]ucli.Flag{
		f.String("ssh-host", "", host),
		f.Int("ssh-port", 22, "SSH port"),
		f.String("ssh-user", "", "SSH user; empty: the user running this program, as ssh does"),
	}, SSHKeyFlags(f)...)
}

// SSHConfig reads SSHFlags (ssh-host, ssh-port, ssh-user, ssh-key,
// ssh-known-hosts) into an sshx.Config, so backup and restore turn the same
// keys into a connection the same way.
func SSHConfig(c *ucli.Context) sshx.Config {
	return sshx.Config{
		Host:       c.String("ssh-host"),
		Port:       c.Int("ssh-port"),
		User:       c.String("ssh-user"),
		KeyFile:    c.Path("ssh-key"),
		KnownHosts: c.Path("ssh-known-hosts"),
	}
}

// CheckKnownHosts fails before anything is changed when SSH is needed
// (who: "sftp://... needs", "files-via-ssh, restart need") and the
// known_hosts file is not configured (a usage error) or cannot be read;
// otherwise the first connection would fail halfway through the work.
func CheckKnownHosts(who, path string) error {
	if path == "" {
		return Usagef("%s SSH, but no known_hosts file is configured (--ssh-known-hosts)", who)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s SSH, but the known_hosts file cannot be read: %w; "+
			"add the host keys there (ssh-keyscan, verified out of band) or point ssh-known-hosts at the right file", who, err)
	}
	return nil
}
