package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/mysqlx"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// settings is the restore configuration shared by every command: where the
// channel is, what to trust, and how to reach the standby's stores.
type settings struct {
	Channel        string // the channel directory on this site's NFS mount
	ChannelName    string // expected channel name; read from channel.json when empty
	Site           string // this site's name: sets must have it as target
	Source         string // expected source site ("" = not checked)
	RoleFile       string
	AllowedSigners string
	StateDir       string         // ledger, verification cache, lock
	Leader         leader.Options // which standby node acts; Leader.NodeName is this node
	VerifyWorkers  int
	MaxClockSkew   time.Duration // sets created further after this host's clock are refused

	ESURL            string
	ESUsername       string // with ESPasswordFile: basic auth, as backup's
	ESPasswordFile   string
	ESCAFile         string           // PEM CA for https
	ESReplicas       []es.ReplicaRule // number_of_replicas per index pattern after the restore (a reduced standby)
	ESRepository     string
	ESRepoLocation   string   // es/ as the ES nodes see it ("" = <channel>/es)
	ESKeep           []string // standby-only indices never deleted for being absent from a set
	ESExisting       string
	ESGlobalState    bool
	ESIndexSettings  map[string]any
	ESTimeout        time.Duration // the wait for restored shards
	ESRequestTimeout time.Duration // each request
	esReportInterval time.Duration // how often the shard wait says what it waits for (0: 30s; tests)

	MySQLDefaultsFile   string // local option file: checks, and the client when run here
	MySQLRemoteDefaults string // option file on the leader when the client runs over SSH
	MySQLClient         string
	MySQLViaSSH         bool
	MySQLKeep           []string // standby-only databases never dropped for being absent from a set

	SSH sshx.Config // the standby leader

	StorageRoot string
	ConfigRoot  string
	FilesViaSSH bool
	// RemoteTransfer is the transfer program on the leader that applies the
	// trees with files-via-ssh ("none": SFTP).
	RemoteTransfer string
	Exclude        []string
	// FullCompareEvery: the first restore this long after the last one
	// that compared every file compares every file again (filesrecord.go).
	FullCompareEvery time.Duration
	PreserveOwner    bool

	RedisAddr         string
	RedisPasswordFile string
	RedisDBs          []int

	RestartCommand string
	RestartNodes   []string // host[:port], SSH user/key/known_hosts as for the leader
	RestartTimeout time.Duration

	HealthURLs       []string
	PostcheckTimeout time.Duration

	LockLease time.Duration // the restore lock expires when not renewed for this long (its node died)

	Alert alert.Options
	// MetricsFile is the Prometheus textfile to write ("" = none).
	MetricsFile string
	// MaxRecoveryPointAge: restore watch alerts when the standby's
	// recovery point is older (0 = never), and once when it is not again.
	MaxRecoveryPointAge time.Duration
}

func settingsFlags() []ucli.Flag {
	f := flags
	fl := []ucli.Flag{
		f.Path("channel", "", "channel directory on this site's NFS mount, e.g. /mnt/bcp/prod-to-bcp"),
		f.String("channel-name", "", "expected channel name (default: the channel's channel.json)"),
		f.String("site", "", "this site's name; only sets whose target is this site are restored (required)"),
		f.String("source", "", "expected source site of the channel (empty: not checked)"),
		f.Path("role-file", site.DefaultPath, "site role file (active or standby); restore changes only a standby"),
		f.Path("allowed-signers", "", "OpenSSH allowed_signers file with the keys that may sign sets (required)"),
		f.Path("state-dir", "/var/lib/squirro-bcp/restore", "the standby's memory: ledger (what is live), verification cache, lock; on a standby of several nodes a directory every node mounts (shared storage), so a new leader knows what is live"),
		f.Int("verify-workers", 0, "parallel hashing workers (0: one per CPU)"),
		f.Duration("max-clock-skew", manifest.DefaultMaxClockSkew, "refuse (exit 6) a set created more than this after this host's clock"),

		f.String("es-url", "", "Elasticsearch URL of the standby"),
		f.String("es-username", "", "Elasticsearch user"),
		f.Path("es-password-file", "", "file holding the Elasticsearch password"),
		f.Path("es-ca-file", "", "PEM CA certificate for Elasticsearch over TLS"),
		f.Strings("es-replicas", nil, "number_of_replicas per index pattern after the restore, PATTERN=N, first match wins; e.g. \"*=0\" on a 1-node standby (prod's count can never be assigned there); unmatched indices keep prod's"),
		f.String("es-repository", "", "name to register the channel's es/ under (default: bcp-<channel name>)"),
		f.Path("es-repository-location", "", "the channel's es/ directory as the standby's Elasticsearch nodes see it (default: <channel>/es)"),
		f.Strings("es-keep", nil, "standby indices never deleted, though the set says prod no longer has them (patterns, e.g. standby_*)"),
		f.String("es-existing", es.ExistingDelete, "indices being replaced are first: delete or close"),
		f.Bool("es-include-global-state", false, "also restore the cluster's global state (templates, persistent settings)"),
		f.Strings("es-index-settings", nil, "index settings overrides KEY=VALUE, e.g. index.number_of_replicas=0"),
		f.Duration("es-timeout", time.Hour, "how long to wait for the restored shards"),
		f.Duration("es-request-timeout", time.Minute, "how long one Elasticsearch request may go unanswered (a hung node)"),

		f.Path("mysql-defaults-file", "", "MySQL option file (user, password, host/port or socket) for the checks and the local client"),
		f.String("mysql-remote-defaults", "", "option file on the leader, used when the client runs over SSH"),
		f.String("mysql-client", "mysql", "mysql client program"),
		f.Bool("mysql-via-ssh", false, "run the mysql client on the leader over SSH"),
		f.Strings("mysql-keep", nil, "standby databases never dropped, though the set says prod no longer has them (patterns)"),

		f.String("storage-root", "", "the standby's storage directory (tree \"storage\"); on the leader when --files-via-ssh"),
		f.String("config-root", "", "the standby's config directory (tree \"config\"); empty: config is not restored"),
		f.Bool("files-via-ssh", false, "apply file trees on the leader over SSH, through its transfer program (remote-transfer)"),
		f.String("remote-transfer", "transfer", "with files-via-ssh: the transfer program on the leader, started there as `PROGRAM serve DIR`, which makes every change "+
			"next to the data and never outside DIR; a name the account's shell finds or a path. \"none\": plain SFTP, whose server follows symlinks - "+
			"safe only while nobody else can change the tree during a restore. If it cannot be started, the restore stops before any change"),
		f.Duration("full-compare-every", 24*time.Hour, "the files stage skips a directory whose list equals the one last restored into it (the same content); the first restore this long after the last full comparison compares every file again, correcting a change made on the standby by hand; 0: every restore compares every file"),
		f.Strings("exclude", nil, "paths left alone in every tree, storage and config alike (pattern with / matches the path, without matches any name); unlike backup there is no per-tree list"),
		f.Bool("preserve-owner", false, "set files' owner and group as in the set (needs root on the target)"),

		f.String("redis-addr", "", "Redis host:port on the standby leader; empty: no flush"),
		f.Path("redis-password-file", "", "file holding the Redis password"),
		f.Strings("redis-dbs", nil, "Redis databases to flush (empty: all)"),

		f.String("restart-command", "", "command that restarts Squirro on every standby node (restart-nodes), run over SSH, in parallel; required for a restore: \"none\" restarts nothing on purpose"),
		f.Strings("restart-nodes", nil, "standby nodes host[:port] to restart"),
		f.Duration("restart-timeout", 10*time.Minute, "per-node restart timeout"),

		f.Strings("health-urls", nil, "URLs that must answer 2xx after the restart"),
		f.Duration("postcheck-timeout", 5*time.Minute, "how long post-checks may take to pass"),
		f.Duration("lock-lease", 15*time.Minute, "the restore lock in state-dir is renewed every third of this while a restore runs; a lock not renewed for this long (its node died) is taken over by the next leader"),

		f.Path("metrics-file", "", "Prometheus textfile to write (node_exporter textfile collector): recovery point, last restore, sets waiting"),
		f.Duration("max-recovery-point-age", 2*time.Hour, "restore watch alerts (alert-*) when the standby's recovery point is older than this, and once when it is not again; 0: never"),
	}
	fl = append(fl, cli.SSHFlags(f, "standby leader host for SSH and SFTP (files-via-ssh, mysql-via-ssh); restart-nodes use the same port, user, key and known_hosts")...)
	fl = append(fl, leader.Flags(f)...)
	return append(fl, alert.Flags(f)...)
}

// renamed are restore's former setting names. Neither spelling is kept as
// an alias: urfave/cli lists aliases in --help, and the config file would
// then accept both. An old name in the config file or the environment is
// refused (exit 2, cli.Program.Command) instead of being ignored, which
// would silently skip a tree or apply it locally.
var renamed = []cli.Renamed{
	{Names: backupNames, Why: "the name backup uses"},
	{Names: replaced, Why: "the set now says which indices prod no longer has, and those are deleted; " +
		"es-keep names standby indices to keep all the same, so the patterns are not the same"},
}

// backupNames maps restore's former setting names to backup's, which
// restore now uses too.
var backupNames = map[string]string{
	"es-location":     "es-repository-location",
	"es-global-state": "es-include-global-state",
	"mysql-defaults":  "mysql-defaults-file",
	"mysql-over-ssh":  "mysql-via-ssh",
	"storage-dir":     "storage-root",
	"config-dir":      "config-root",
	"files-over-ssh":  "files-via-ssh",
}

// replaced maps settings that are gone to the one that took their place
// with another meaning.
var replaced = map[string]string{"es-delete-patterns": "es-keep"}

func readSettings(c *ucli.Context) (settings, error) {
	s := settings{
		Channel: c.Path("channel"), ChannelName: c.String("channel-name"), Site: c.String("site"),
		Source: c.String("source"), RoleFile: c.Path("role-file"), AllowedSigners: c.Path("allowed-signers"),
		StateDir: c.Path("state-dir"), Leader: leader.FromContext(c),
		VerifyWorkers: c.Int("verify-workers"), MaxClockSkew: c.Duration("max-clock-skew"),

		ESURL: c.String("es-url"), ESUsername: c.String("es-username"), ESPasswordFile: c.Path("es-password-file"), ESCAFile: c.Path("es-ca-file"),
		ESRepository: c.String("es-repository"), ESRepoLocation: c.Path("es-repository-location"),
		ESKeep: c.StringSlice("es-keep"), ESExisting: c.String("es-existing"),
		ESGlobalState: c.Bool("es-include-global-state"), ESTimeout: c.Duration("es-timeout"),
		ESRequestTimeout: c.Duration("es-request-timeout"),

		MySQLDefaultsFile: c.Path("mysql-defaults-file"), MySQLRemoteDefaults: c.String("mysql-remote-defaults"),
		MySQLClient: c.String("mysql-client"), MySQLViaSSH: c.Bool("mysql-via-ssh"), MySQLKeep: c.StringSlice("mysql-keep"),

		SSH: cli.SSHConfig(c),

		StorageRoot: c.String("storage-root"), ConfigRoot: c.String("config-root"), FilesViaSSH: c.Bool("files-via-ssh"),
		RemoteTransfer:   c.String("remote-transfer"),
		FullCompareEvery: c.Duration("full-compare-every"),
		Exclude:          c.StringSlice("exclude"), PreserveOwner: c.Bool("preserve-owner"),

		RedisAddr: c.String("redis-addr"), RedisPasswordFile: c.Path("redis-password-file"),

		RestartCommand: c.String("restart-command"), RestartNodes: c.StringSlice("restart-nodes"),
		RestartTimeout: c.Duration("restart-timeout"),

		HealthURLs: c.StringSlice("health-urls"), PostcheckTimeout: c.Duration("postcheck-timeout"), LockLease: c.Duration("lock-lease"),
		Alert:       alert.FromContext(c),
		MetricsFile: c.Path("metrics-file"), MaxRecoveryPointAge: c.Duration("max-recovery-point-age"),
	}
	for _, d := range c.StringSlice("redis-dbs") {
		n, err := strconv.Atoi(strings.TrimSpace(d))
		if err != nil || n < 0 {
			return s, cli.Usagef("--redis-dbs: %q is not a database number", d)
		}
		s.RedisDBs = append(s.RedisDBs, n)
	}
	rules, err := es.ParseReplicaRules(c.StringSlice("es-replicas"))
	if err != nil {
		return s, cli.Usagef("%v", err)
	}
	s.ESReplicas = rules
	if kv := c.StringSlice("es-index-settings"); len(kv) > 0 {
		s.ESIndexSettings = map[string]any{}
		for _, p := range kv {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return s, cli.Usagef("--es-index-settings: %q is not KEY=VALUE", p)
			}
			var val any
			if err := json.Unmarshal([]byte(v), &val); err != nil {
				val = v
			}
			s.ESIndexSettings[strings.TrimSpace(k)] = val
		}
	}
	if s.Leader.Mode == leader.ModeMySQL {
		defaults := s.MySQLDefaultsFile
		s.Leader.MySQL = func(ctx context.Context) (*sql.DB, error) {
			dsn, err := mysqlx.OptionFileDSN(defaults)
			if err != nil {
				return nil, err
			}
			return sql.Open("mysql", dsn)
		}
	}
	return s, s.Leader.Validate()
}

// validate checks what every command needs: a channel (or --from), a site
// name and trusted keys.
func (s *settings) validate(needChannel bool) error {
	if needChannel && s.Channel == "" {
		return cli.Usagef("no channel directory configured (--channel or channel = \"...\" in the config file)")
	}
	if s.Site == "" {
		return cli.Usagef("no site name configured (--site): restore must know which target the sets must name")
	}
	if s.AllowedSigners == "" {
		return cli.Usagef("no allowed_signers file configured (--allowed-signers): without it no set can be trusted")
	}
	if s.StateDir == "" {
		return cli.Usagef("no state directory configured (--state-dir)")
	}
	if s.LockLease != 0 && s.LockLease < 3*time.Second {
		return cli.Usagef("--lock-lease %s: want at least 3s (it is renewed every third of it)", s.LockLease)
	}
	if s.MaxRecoveryPointAge < 0 {
		return cli.Usagef("--max-recovery-point-age %s: want 0 (never alert) or more", s.MaxRecoveryPointAge)
	}
	if s.MaxClockSkew < 0 {
		return cli.Usagef("--max-clock-skew %s: want 0 or more", s.MaxClockSkew)
	}
	for _, k := range []struct {
		name     string
		patterns []string
	}{{"es-keep", s.ESKeep}, {"mysql-keep", s.MySQLKeep}} {
		for _, p := range k.patterns {
			if _, err := path.Match(p, ""); err != nil {
				return cli.Usagef("--%s %q: %v", k.name, p, err)
			}
		}
	}
	if s.ESExisting != es.ExistingDelete && s.ESExisting != es.ExistingClose {
		return cli.Usagef("--es-existing %q: want %q or %q", s.ESExisting, es.ExistingDelete, es.ExistingClose)
	}
	if s.FilesViaSSH || s.MySQLViaSSH {
		if s.SSH.Host == "" {
			return cli.Usagef("--files-via-ssh / --mysql-via-ssh need --ssh-host")
		}
	}
	if s.MySQLViaSSH && s.MySQLRemoteDefaults == "" {
		return cli.Usagef("--mysql-via-ssh needs --mysql-remote-defaults (the option file on the leader)")
	}
	if s.restarts() && len(s.RestartNodes) == 0 {
		return cli.Usagef("--restart-command needs --restart-nodes")
	}
	return nil
}

// restartNone as restart-command restarts nothing, on purpose; an empty
// restart-command is a configuration error when a restore runs.
const restartNone = "none"

// restarts reports whether stage 10 runs a restart command.
func (s *settings) restarts() bool { return s.RestartCommand != "" && s.RestartCommand != restartNone }

// checkKnownHosts fails when SSH is needed (for what) and the known_hosts
// file is not configured or cannot be read, before anything is changed:
// otherwise the first SSH stage would fail with earlier stages restored.
func (s *settings) checkKnownHosts(what []string) error {
	if len(what) == 0 {
		return nil
	}
	return cli.CheckKnownHosts(strings.Join(what, ", ")+" need", s.SSH.KnownHosts)
}

// stateDir creates and returns the state directory.
func (s *settings) stateDir() (string, error) {
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return "", fmt.Errorf("state directory %s: %w", s.StateDir, err)
	}
	return s.StateDir, nil
}

func (s *settings) cachePath() string { return filepath.Join(s.StateDir, "verify-cache") }

// nodeSSH is the SSH config of a restart node "host[:port]".
func (s *settings) nodeSSH(node string) sshx.Config {
	cfg := s.SSH
	cfg.Host, cfg.Port = node, s.SSH.Port
	if h, p, ok := strings.Cut(node, ":"); ok && !strings.Contains(p, ":") {
		if n, err := strconv.Atoi(p); err == nil {
			cfg.Host, cfg.Port = h, n
		}
	}
	if strings.HasPrefix(node, "[") {
		if i := strings.Index(node, "]"); i > 0 {
			cfg.Host = node[1:i]
			if n, err := strconv.Atoi(strings.TrimPrefix(node[i+1:], ":")); err == nil {
				cfg.Port = n
			}
		}
	}
	return cfg
}
