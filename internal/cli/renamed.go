package cli

import (
	"fmt"
	"sort"

	"github.com/BurntSushi/toml"
)

// CheckRenamed refuses a program's former setting names. renamed maps each
// old name to the new one; neither is kept as an alias, since urfave/cli
// lists aliases in --help and altsrc would then read both spellings from the
// config file. An old key in configFile ("" = none) or an old
// BCP_<PROGRAM>_<OLD> in the environment (lookupEnv, normally os.LookupEnv)
// is a usage error (exit 2) naming the new name, instead of being silently
// ignored; why says where the new name comes from, e.g. "the name backup
// uses". On the command line urfave/cli already refuses an old flag.
func CheckRenamed(program string, renamed map[string]string, why, configFile string, lookupEnv func(string) (string, bool)) error {
	var keys map[string]any
	if configFile == DefaultConfig(program) && notExist(configFile) {
		configFile = "" // the default file is optional
	}
	if configFile != "" {
		if _, err := toml.DecodeFile(configFile, &keys); err != nil {
			return Usagef("config file %s: %v", configFile, err)
		}
	}
	old := make([]string, 0, len(renamed))
	for o := range renamed {
		old = append(old, o)
	}
	sort.Strings(old)
	for _, o := range old {
		if _, ok := keys[o]; ok {
			return Usagef("config file %s: %q is now %q (%s); rename the key", configFile, o, renamed[o], why)
		}
		if _, ok := lookupEnv(EnvVar(program, o)); ok {
			return Usagef("environment: %s is now %s (%s); rename the variable", EnvVar(program, o), EnvVar(program, renamed[o]), why)
		}
	}
	return nil
}

// ReadConfigKeys reads a program's TOML config file into a map of its keys
// (for checks that look at another program's settings).
func ReadConfigKeys(path string) (map[string]any, error) {
	keys := map[string]any{}
	if _, err := toml.DecodeFile(path, &keys); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return keys, nil
}
