package cli

import (
	"os"

	ucli "github.com/urfave/cli/v2"
)

// Program is what every command of one program shares: its name (the
// BCP_<PROGRAM>_ prefix of the environment, the default config file
// /etc/squirro-bcp/<program>.toml) and the setting names it no longer
// accepts. Each program declares one in main.go and builds every command
// with its Command method, so the three programs' commands read alike.
type Program struct {
	Name string
	// Renamed are former setting names, refused (exit 2) when the config
	// file or the environment still uses them (CheckRenamed).
	Renamed []Renamed
}

// Renamed maps former setting names to the ones that took their place
// (old -> new), and says why, e.g. "the name backup uses".
type Renamed struct {
	Names map[string]string
	Why   string
}

// Flags builds the program's flags (BCP_<PROGRAM>_<NAME>, config file key).
func (p Program) Flags() Flags { return Flags{Program: p.Name} }

// Command returns cmd with the common flags (--config, --log-format,
// --log-level), the config file loaded and the former setting names
// refused before cmd's own Before and Action, and urfave/cli's flag errors
// made usage errors (exit 2).
func (p Program) Command(cmd *ucli.Command) *ucli.Command {
	if len(p.Renamed) > 0 {
		before := cmd.Before
		cmd.Before = func(c *ucli.Context) error {
			if err := p.CheckRenamed(c.Path("config"), os.LookupEnv); err != nil {
				return err
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
	return withConfig(p.Name, cmd)
}

// CheckRenamed refuses the program's former setting names in configFile
// and the environment (lookupEnv, normally os.LookupEnv); on the command
// line urfave/cli already refuses them.
func (p Program) CheckRenamed(configFile string, lookupEnv func(string) (string, bool)) error {
	for _, r := range p.Renamed {
		if err := CheckRenamed(p.Name, r.Names, r.Why, configFile, lookupEnv); err != nil {
			return err
		}
	}
	return nil
}
