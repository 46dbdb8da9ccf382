package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// The two sites are configured as doc/runbook.md ("Day one") says: on each
// site, <site>/etc stands for /etc/squirro-bcp with backup.toml,
// transfer.toml, restore.toml, the role file, the site's signing key and
// allowed_signers (both sites' keys); each site's NFS holds both channels.
// A command runs "on" a site with BCP_<PROGRAM>_CONFIG naming that site's
// files, so the runbook's lines (no --config) run as written.

var sites = []string{"prod", "bcp"}

func other(site string) string {
	if site == "prod" {
		return "bcp"
	}
	return "prod"
}

// etc is the site's stand-in for /etc/squirro-bcp.
func (d *demo) etc(site, name string) string { return filepath.Join(d.dir, site, "etc", name) }

// siteEnv is the environment a command on site runs with.
func (d *demo) siteEnv(site string) []string {
	env := os.Environ()
	for _, p := range []string{"backup", "transfer", "restore"} {
		env = append(env, fmt.Sprintf("BCP_%s_CONFIG=%s", strings.ToUpper(p), d.etc(site, p+".toml")))
	}
	return env
}

// channel is the channel from -> to on site's NFS.
func (d *demo) channel(site, from string) string {
	return filepath.Join(d.info.Sites[site].NFS, from+"-to-"+other(from))
}

func (d *demo) configure() error {
	var allowed strings.Builder
	for _, s := range sites {
		if err := os.MkdirAll(d.etc(s, ""), 0o750); err != nil {
			return err
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		blk, err := ssh.MarshalPrivateKey(priv, s+"-backup")
		if err != nil {
			return err
		}
		if err := os.WriteFile(d.etc(s, "sign_ed25519"), pem.EncodeToMemory(blk), 0o600); err != nil {
			return err
		}
		signer, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			return err
		}
		fmt.Fprintf(&allowed, "%s-backup namespaces=\"manifest@squirro-bcp,epoch@squirro-bcp\" %s", s, ssh.MarshalAuthorizedKey(signer.PublicKey()))
	}
	for _, s := range sites {
		role := map[string]string{"prod": "active", "bcp": "standby"}[s]
		if err := os.WriteFile(d.etc(s, "role"), []byte(role+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(d.etc(s, "allowed_signers"), []byte(allowed.String()), 0o644); err != nil {
			return err
		}
	}
	// Squirro's restart script and health page, stood in for on loopback
	script := d.path("squirro-restart.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$(date -u +%FT%TZ) squirro services restarted on $(hostname)\" >> "+d.path("restarts.log")+"\n"), 0o755); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	d.health = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) })}
	go func() { _ = d.health.Serve(ln) }() // ErrServerClosed when the demo stops it
	d.healthURL = "http://" + ln.Addr().String() + "/api/health"

	helper := filepath.Join(d.root, "bin", "transfer")
	for _, s := range sites {
		me, o := d.info.Sites[s], d.info.Sites[other(s)]
		out, in := d.channel(s, s), d.channel(s, other(s))
		configs := map[string]string{
			"backup.toml": fmt.Sprintf(`# backup on the %[1]s leader, into %[2]s
channel = %[3]q
reverse-channel = %[4]q
site = %[1]q
role-file = %[5]q
allowed-signers = %[6]q
sign-key = %[7]q
state-dir = %[8]q
es-url = [%[9]q]
mysql-host = %[10]q
mysql-port = %[11]d
mysql-user = %[12]q
mysql-password-file = %[13]q
storage-root = %[14]q
config-root = %[15]q
min-free-bytes = 0
`, s, filepath.Base(out), out, in, d.etc(s, "role"), d.etc(s, "allowed_signers"), d.etc(s, "sign_ed25519"), d.path(s+"/backup-state"),
				me.ES.URL, me.MariaDB.Host, me.MariaDB.Port, me.MariaDB.User, me.MariaDB.PasswordFile, d.path(s+"-storage"), d.path(s+"-etc-squirro")),
			"transfer.toml": fmt.Sprintf(`# transfer %[1]s -> %[2]s over SFTP
ssh-key = %[3]q
ssh-known-hosts = %[4]q
allowed-signers = %[5]q
channel = %[6]q
source = %[1]q
target = %[2]q
cache = %[7]q
remote-transfer = %[8]q
`, s, other(s), o.SSH.KeyFile, o.SSH.KnownHosts, d.etc(s, "allowed_signers"), filepath.Base(out), d.path(s+"/transfer-cache"), helper),
			"restore.toml": fmt.Sprintf(`# restore on the %[1]s leader, from %[2]s
channel = %[3]q
reverse-channel = %[4]q
site = %[1]q
source = %[5]q
role-file = %[6]q
allowed-signers = %[7]q
sign-key = %[8]q
state-dir = %[9]q
es-url = %[10]q
es-index-settings = ["index.number_of_replicas=0"]
mysql-defaults-file = %[11]q
ssh-host = %[12]q
ssh-port = %[13]d
ssh-user = %[14]q
ssh-key = %[15]q
ssh-known-hosts = %[16]q
storage-root = %[17]q
config-root = %[18]q
files-via-ssh = true
remote-transfer = %[19]q
redis-addr = %[20]q
restart-command = %[21]q
restart-nodes = ["%[12]s:%[13]d", "%[12]s:%[13]d"]
health-urls = [%[22]q]
`, s, filepath.Base(in), in, out, other(s), d.etc(s, "role"), d.etc(s, "allowed_signers"), d.etc(s, "sign_ed25519"), d.path(s+"/restore-state"),
				me.ES.URL, me.MariaDB.DefaultsFile, me.SSH.Host, me.SSH.Port, me.SSH.User, me.SSH.KeyFile, me.SSH.KnownHosts,
				d.path(s+"-storage"), d.path(s+"-etc-squirro"), helper, me.Redis.Addr, script, d.healthURL),
		}
		for name, c := range configs {
			if err := os.WriteFile(d.etc(s, name), []byte(c), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// sftpURL is path on site's NFS as an sftp:// URL through its sshd.
func (d *demo) sftpURL(site, path string) string {
	h := d.info.Sites[site].SSH
	return fmt.Sprintf("sftp://%s@%s:%d%s", h.User, h.Host, h.Port, path)
}
