package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

// errAlreadyUp: the directory already holds a running world.
var errAlreadyUp = errors.New("a world is already running there")

type upOptions struct {
	Dir     string
	Profile string // single (default), cluster, cluster3
}

// profiles are the cluster profiles of `up -profile`.
var profiles = map[string]testenv.ClusterProfile{"cluster": testenv.ProfileCluster, "cluster3": testenv.ProfileCluster3}

func newUpCommand() *cli.Command {
	var o upOptions
	return &cli.Command{
		Name:  "up",
		Usage: "start a two-site world in DIR, detached, and write DIR/world.json and DIR/world.env",
		Description: "Starts prod and bcp, each with its own MariaDB, Redis, Elasticsearch 7.17 (path.repo = the site's\n" +
			"NFS directory), sshd and NFS directory, on free loopback ports. The services keep running after\n" +
			"the command ends; `testworld down -dir DIR` stops them.\n\n" +
			"Exit codes: 0 started, 1 failed, 2 usage, 6 a world already runs in DIR.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "directory of the world (required)", EnvVars: []string{"BCP_TESTWORLD_DIR"}, Destination: &o.Dir},
			&cli.StringFlag{Name: "profile", Value: "single", Usage: "single: one node of everything per site; cluster: a 3-node prod (3 Elasticsearch JVMs, 3 app nodes, MariaDB and Redis replicas) and a 1-node bcp; cluster3: 3 nodes on both sites",
				EnvVars: []string{"BCP_TESTWORLD_PROFILE"}, Destination: &o.Profile},
		},
		Action: func(c *cli.Context) error { return runUp(c.Context, o, c.App.Writer) },
	}
}

func runUp(ctx context.Context, o upOptions, out io.Writer) error {
	if o.Dir == "" {
		return fmt.Errorf("%w: -dir is required", errUsage)
	}
	if _, ok := profiles[o.Profile]; !ok && o.Profile != "single" && o.Profile != "" {
		return fmt.Errorf("%w: -profile %q: want single, cluster or cluster3", errUsage, o.Profile)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if running, err := testenv.Running(dir); err != nil {
		return err
	} else if len(running) > 0 {
		return fmt.Errorf("%s: %w (%d services); stop it first with `make env-down` (testworld down -dir %s)", dir, errAlreadyUp, len(running), dir)
	}
	// A stopped world's files are replaced by a fresh world.
	for _, site := range []string{"prod", "bcp"} {
		if err := os.RemoveAll(filepath.Join(dir, site)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	defer testenv.Shutdown()
	fmt.Fprintf(out, "starting the two-site world (profile %s) in %s (Elasticsearch takes up to a minute or two)...\n", o.Profile, dir)
	var w interface {
		Info() (testenv.WorldInfo, error)
		Stop()
	}
	if p, ok := profiles[o.Profile]; ok {
		w, err = testenv.StartClusterWorld(ctx, dir, p, testenv.StartOptions{Detached: true})
	} else {
		w, err = testenv.StartWorld(ctx, dir, testenv.StartOptions{Detached: true})
	}
	if err != nil {
		return fmt.Errorf("start world in %s: %w", dir, err)
	}
	info, err := w.Info()
	if err != nil {
		w.Stop()
		return err
	}
	js, err := info.MarshalIndent()
	if err != nil {
		w.Stop()
		return err
	}
	jsonPath, envPath := filepath.Join(dir, "world.json"), filepath.Join(dir, "world.env")
	if err := os.WriteFile(jsonPath, js, 0o600); err != nil {
		w.Stop()
		return err
	}
	if err := os.WriteFile(envPath, []byte(envFile(info)), 0o600); err != nil {
		w.Stop()
		return err
	}
	for _, name := range []string{"prod", "bcp"} {
		s := info.Sites[name]
		fmt.Fprintf(out, "%s:\n  nfs            %s\n  elasticsearch  %s (path.repo %s)\n  mariadb        %s:%d user %s, password in %s (mysql --defaults-extra-file=%s)\n  redis          %s\n  ssh            ssh -i %s -o UserKnownHostsFile=%s -p %d %s@%s\n",
			name, s.NFS, s.ES.URL, s.ES.PathRepo, s.MariaDB.Host, s.MariaDB.Port, s.MariaDB.User, s.MariaDB.PasswordFile,
			s.MariaDB.DefaultsFile, s.Redis.Addr, s.SSH.KeyFile, s.SSH.KnownHosts, s.SSH.Port, s.SSH.User, s.SSH.Host)
		if c := s.Cluster; c != nil {
			fmt.Fprintf(out, "  es nodes       %s\n  mariadb replica %s\n  redis replica  %s\n  shared state   %s\n",
				strings.Join(c.ESNodes, " "), c.MariaDBReplica, c.RedisReplica, c.Shared)
			for _, a := range c.Apps {
				fmt.Fprintf(out, "  app node %-12s ssh -p %d (key %s, known_hosts %s), role %s, state %s\n", a.Name, a.SSHPort, c.KeyFile, c.KnownHosts, a.RoleFile, a.StateDir)
			}
		}
	}
	fmt.Fprintf(out, "connection details: %s (shell: source %s)\nstop with: make env-down\n", jsonPath, envPath)
	return nil
}

// envFile renders the world as shell variables: WORLD_<SITE>_<THING>.
func envFile(wi testenv.WorldInfo) string {
	vars := map[string]string{"WORLD_DIR": wi.Dir}
	for name, s := range wi.Sites {
		p := "WORLD_" + strings.ToUpper(name) + "_"
		for k, v := range map[string]string{
			"NFS":                 s.NFS,
			"ES_URL":              s.ES.URL,
			"ES_PATH_REPO":        s.ES.PathRepo,
			"MYSQL_HOST":          s.MariaDB.Host,
			"MYSQL_PORT":          fmt.Sprint(s.MariaDB.Port),
			"MYSQL_SOCKET":        s.MariaDB.Socket,
			"MYSQL_USER":          s.MariaDB.User,
			"MYSQL_PASSWORD_FILE": s.MariaDB.PasswordFile,
			"MYSQL_DEFAULTS_FILE": s.MariaDB.DefaultsFile,
			"REDIS_ADDR":          s.Redis.Addr,
			"SSH_HOST":            s.SSH.Host,
			"SSH_PORT":            fmt.Sprint(s.SSH.Port),
			"SSH_USER":            s.SSH.User,
			"SSH_KEY":             s.SSH.KeyFile,
			"SSH_KNOWN_HOSTS":     s.SSH.KnownHosts,
		} {
			vars[p+k] = v
		}
		if c := s.Cluster; c != nil {
			vars[p+"ES_NODES"] = strings.Join(c.ESNodes, " ")
			vars[p+"MYSQL_REPLICA"] = c.MariaDBReplica
			vars[p+"REDIS_REPLICA_ADDR"] = c.RedisReplica
			vars[p+"SHARED"] = c.Shared
			vars[p+"CLUSTER_SSH_KEY"] = c.KeyFile
			vars[p+"CLUSTER_SSH_KNOWN_HOSTS"] = c.KnownHosts
			for i, a := range c.Apps {
				q := fmt.Sprintf("%sAPP_%d_", p, i+1)
				vars[q+"NAME"], vars[q+"SSH_PORT"], vars[q+"ROLE_FILE"], vars[q+"STATE_DIR"] = a.Name, fmt.Sprint(a.SSHPort), a.RoleFile, a.StateDir
			}
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# The two-site test world started by `make env-up` (testworld up). Source it in a shell.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(vars[k], "'", `'\''`))
	}
	return b.String()
}
