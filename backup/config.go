package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/mysqlx"
	"github.com/squirro-bcp/bcp/internal/sshx"
)

// Stage names (also the metric labels and --stages values).
const (
	stageMySQL = "mysql"
	stageFiles = "files"
	stageES    = "elasticsearch"
)

// config is every setting of the program (flags, BCP_BACKUP_*, TOML).
type config struct {
	Channel  string // channel directory on NFS
	Site     string // this site's name; the channel's source must be it
	RoleFile string
	StateDir string // local state: capture caches

	Leader       leader.Options // which node works; Leader.NodeName is this node
	ClusterNodes []string       // the site's application nodes, for the odd-node check

	Stages []string // which stages run (all by default)

	ES             es.Options
	ESRepo         string
	ESRepoLocation string // as the ES nodes see it; default <channel>/es
	ESIndices      []string
	ESGlobalState  bool

	MySQL          mysqlx.Options
	MySQLDatabases []string
	MySQLViaSSH    bool

	SSH sshx.Config // the leader, for mysqldump and SFTP roots

	StorageRoot    string
	StorageExclude []string
	ConfigRoot     string
	ConfigInclude  []string
	ConfigExclude  []string
	FilesViaSSH    bool
	Workers        int

	SignKey   string // private key file; empty: ssh-agent
	SignAgent string // ssh-agent key fingerprint (SHA256:...)

	// Fencing (manifest/DESIGN.md): the reverse channel's epoch records
	// and the keys that may sign them.
	ReverseChannel string
	AllowedSigners string

	SpaceMargin int   // percent added to the estimate
	MinFree     int64 // bytes that must stay free in any case

	MetricsFile string
	Alert       alert.Options

	LogInterval time.Duration
	LockLease   time.Duration // the channel lock expires when not renewed for this long
}

func (c *config) has(stage string) bool {
	for _, s := range c.Stages {
		if s == stage {
			return true
		}
	}
	return false
}

func configFlags() []ucli.Flag {
	f := flags
	fl := []ucli.Flag{
		f.Path("channel", "", "channel directory on NFS, e.g. /mnt/bcp/prod-to-bcp"),
		f.String("site", "", "this site's name; the channel's source must be it"),
		f.Path("role-file", "/etc/squirro-bcp/role", "file holding this site's role: active or standby"),
		f.Path("state-dir", "/var/lib/squirro-bcp/backup", "local state (capture caches)"),
		f.Strings("stages", []string{stageMySQL, stageFiles, stageES}, "stages to run: mysql, files, elasticsearch"),
		f.Strings("es-url", []string{"http://127.0.0.1:9200"}, "Elasticsearch URLs"),
		f.String("es-username", "", "Elasticsearch user"),
		f.Path("es-password-file", "", "file holding the Elasticsearch password"),
		f.Path("es-ca-file", "", "PEM CA certificate for Elasticsearch over TLS"),
		f.String("es-repository", "", "snapshot repository name (default bcp-<channel name>)"),
		f.String("es-repository-location", "", "the channel's es/ directory as the Elasticsearch nodes see it (default <channel>/es)"),
		f.Strings("es-indices", nil, "indices to snapshot, open and closed (patterns; default all but system ones); the standby deletes indices they cover that prod no longer has"),
		f.Bool("es-include-global-state", false, "include the cluster's global state (templates, settings) in the snapshot"),
		f.String("mysql-host", "127.0.0.1", "MySQL host (as seen from where mysqldump runs)"),
		f.Int("mysql-port", 3306, "MySQL port"),
		f.String("mysql-socket", "", "MySQL unix socket instead of TCP"),
		f.String("mysql-user", "root", "MySQL user"),
		f.Path("mysql-password-file", "", "file holding the MySQL password (never put it on a command line)"),
		f.String("mysql-defaults-file", "", "an existing MySQL option file on the host running mysqldump, instead of user/password"),
		f.Strings("mysql-databases", nil, "databases to dump (default all non-system ones, and then the standby drops databases prod no longer has)"),
		f.String("mysqldump", "mysqldump", "mysqldump program"),
		f.Bool("mysql-via-ssh", false, "run mysqldump on the leader over SSH"),
		f.String("storage-root", "/var/lib/squirro/storage", "storage directory to capture (empty: none)"),
		f.Strings("storage-exclude", nil, "patterns to leave out of storage"),
		f.String("config-root", "", "config directory to capture, e.g. /etc/squirro (empty: none)"),
		f.Strings("config-include", nil, "patterns of config files to capture (default all)"),
		f.Strings("config-exclude", nil, "patterns of config files to leave out"),
		f.Bool("files-via-ssh", false, "read the roots on the leader over SFTP"),
		f.Int("workers", 4, "files read in parallel"),
		f.Path("sign-key", "", "SSH private key that signs manifests (default: ssh-agent)"),
		f.Path("reverse-channel", "", "the channel of the other direction on this site's NFS (e.g. /mnt/bcp/bcp-to-prod): its epoch records tell backup when another site was promoted"),
		f.Path("allowed-signers", "", "OpenSSH allowed_signers file trusting the keys that sign epoch records (needed once a channel has any)"),
		f.String("sign-agent-key", "", "fingerprint (SHA256:...) of the ssh-agent key to sign with"),
		f.Int("space-margin-percent", 50, "free space needed on the channel: estimate from the last set plus this percentage"),
		f.Int64("min-free-bytes", 1<<30, "free bytes the channel must keep in any case"),
		f.Path("metrics-file", "", "Prometheus textfile to write (node_exporter textfile collector)"),
		f.Duration("log-interval", 30*time.Second, "progress log line interval when not on a terminal"),
		f.Duration("lock-lease", 15*time.Minute, "the channel lock is renewed every third of this while a run lives; a lock not renewed for this long (its node died) is taken over by the next run"),
	}
	fl = append(fl, cli.SSHFlags(f, "leader host for SSH (mysql-via-ssh, files-via-ssh)")...)
	fl = append(fl, f.Strings("cluster-nodes", nil, "the prod cluster's application nodes (names), to warn when their number is even"))
	fl = append(fl, leader.Flags(f)...)
	return append(fl, alert.Flags(f)...)
}

func configFromContext(c *ucli.Context) (*config, error) {
	cfg := &config{
		Channel: c.Path("channel"), Site: c.String("site"), RoleFile: c.Path("role-file"),
		StateDir: c.Path("state-dir"), Leader: leader.FromContext(c), ClusterNodes: c.StringSlice("cluster-nodes"),
		Stages: c.StringSlice("stages"),
		ES: es.Options{URLs: c.StringSlice("es-url"), Username: c.String("es-username"),
			PasswordFile: c.Path("es-password-file"), CACertFile: c.Path("es-ca-file")},
		ESRepo: c.String("es-repository"), ESRepoLocation: c.String("es-repository-location"),
		ESIndices: c.StringSlice("es-indices"), ESGlobalState: c.Bool("es-include-global-state"),
		MySQL: mysqlx.Options{Host: c.String("mysql-host"), Port: c.Int("mysql-port"), Socket: c.String("mysql-socket"),
			User: c.String("mysql-user"), PasswordFile: c.Path("mysql-password-file"),
			DefaultsFile: c.String("mysql-defaults-file"), Mysqldump: c.String("mysqldump")},
		MySQLDatabases: c.StringSlice("mysql-databases"), MySQLViaSSH: c.Bool("mysql-via-ssh"),
		SSH:         cli.SSHConfig(c),
		StorageRoot: c.String("storage-root"), StorageExclude: c.StringSlice("storage-exclude"),
		ConfigRoot: c.String("config-root"), ConfigInclude: c.StringSlice("config-include"),
		ConfigExclude: c.StringSlice("config-exclude"), FilesViaSSH: c.Bool("files-via-ssh"),
		Workers: c.Int("workers"), SignKey: c.Path("sign-key"), SignAgent: c.String("sign-agent-key"),
		ReverseChannel: c.Path("reverse-channel"), AllowedSigners: c.Path("allowed-signers"),
		SpaceMargin: c.Int("space-margin-percent"), MinFree: c.Int64("min-free-bytes"),
		MetricsFile: c.Path("metrics-file"), Alert: alert.FromContext(c), LogInterval: c.Duration("log-interval"),
		LockLease: c.Duration("lock-lease"),
	}
	return cfg, cfg.validate()
}

// validate checks the settings before any I/O.
func (c *config) validate() error {
	if c.Channel == "" {
		return cli.Usagef("--channel is required (the channel directory on NFS)")
	}
	abs, err := filepath.Abs(c.Channel)
	if err != nil {
		return cli.Usagef("--channel %s: %v", c.Channel, err)
	}
	c.Channel = abs
	if c.Site == "" {
		return cli.Usagef("--site is required (this site's name, e.g. prod)")
	}
	for _, s := range c.Stages {
		switch s {
		case stageMySQL, stageFiles, stageES:
		default:
			return cli.Usagef("--stages: unknown stage %q (want mysql, files, elasticsearch)", s)
		}
	}
	if c.Leader.Mode == leader.ModeMySQL && c.Leader.MySQL == nil {
		my := c.MySQL
		c.Leader.MySQL = func(ctx context.Context) (*sql.DB, error) { return mysqlx.Open(ctx, my) }
	}
	if err := c.Leader.Validate(); err != nil {
		return err
	}
	if (c.MySQLViaSSH || c.FilesViaSSH) && c.SSH.Host == "" {
		return cli.Usagef("--mysql-via-ssh / --files-via-ssh need --ssh-host")
	}
	if c.SpaceMargin < 0 || c.MinFree < 0 {
		return cli.Usagef("--space-margin-percent and --min-free-bytes must not be negative")
	}
	if c.ESRepoLocation == "" {
		c.ESRepoLocation = filepath.Join(c.Channel, "es")
	}
	if c.LockLease == 0 {
		c.LockLease = 15 * time.Minute
	}
	if c.LockLease < 3*time.Second {
		return cli.Usagef("--lock-lease %s: want at least 3s (it is renewed every third of it)", c.LockLease)
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	return nil
}

// repoName is the snapshot repository name.
func (c *config) repoName(channelName string) string {
	if c.ESRepo != "" {
		return c.ESRepo
	}
	return "bcp-" + channelName
}

// mysqlOptions returns the MySQL options with SSH set if configured.
func (c *config) mysqlOptions() mysqlx.Options {
	o := c.MySQL
	if c.MySQLViaSSH {
		s := c.SSH
		o.SSH = &s
	}
	return o
}

func (c *config) String() string { return fmt.Sprintf("channel %s (site %s)", c.Channel, c.Site) }
