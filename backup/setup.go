package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// checkSetup adds the day-one checks of `backup init`: what this site needs
// for both directions (doc/runbook.md, "Day one"). It changes nothing.
func checkSetup(ctx context.Context, cfg *config, p *preflight) {
	if r, err := site.Read(cfg.RoleFile); err != nil {
		p.add(Check{Name: "role file", Err: err, Fix: fmt.Sprintf("write \"active\" into %s on the active site, \"standby\" on the other; keep it where every node of the site reads the same file", cfg.RoleFile)})
	} else {
		p.add(Check{Name: "role file", Detail: fmt.Sprintf("%s says %s", cfg.RoleFile, r)})
	}
	signer, err := loadSigner(cfg)
	if err != nil {
		p.add(Check{Name: "signing key", Err: err, Fix: "make this site's key: ssh-keygen -t ed25519 -N '' -f /etc/squirro-bcp/sign_ed25519, and set sign-key (or load it into ssh-agent)"})
	} else {
		p.add(Check{Name: "signing key", Detail: ssh.FingerprintSHA256(signer.PublicKey())})
	}
	checkAllowedSigners(cfg, signer, p)
	checkPathRepo(ctx, cfg, p)
	checkConfigs(cfg, p)
}

// checkAllowedSigners: this site's key must be trusted for manifests (its
// transfer verifies what it sends) and epoch records (its promotion writes
// records its own readers check), and another key (the other site's) too.
func checkAllowedSigners(cfg *config, signer ssh.Signer, p *preflight) {
	const name = "allowed_signers"
	if cfg.AllowedSigners == "" {
		p.add(Check{Name: name, Err: fmt.Errorf("allowed-signers is not set"),
			Fix: "set allowed-signers in backup.toml (the same file transfer and restore use)"})
		return
	}
	as, err := sshsig.LoadAllowedSigners(cfg.AllowedSigners)
	if err != nil {
		p.add(Check{Name: name, Err: err, Fix: "write both sites' public keys into it, one line each: NAME namespaces=\"manifest@squirro-bcp,epoch@squirro-bcp\" ssh-ed25519 AAAA..."})
		return
	}
	if signer != nil {
		for _, ns := range []string{manifest.Namespace, manifest.EpochNamespace} {
			sig, err := sshsig.Sign(signer, ns, bytes.NewReader([]byte("probe")))
			if err == nil {
				_, err = as.Verify(sig, bytes.NewReader([]byte("probe")), ns, time.Now())
			}
			if err != nil {
				p.add(Check{Name: name, Err: fmt.Errorf("%s does not trust this site's key for %s: %w", cfg.AllowedSigners, ns, err),
					Fix: fmt.Sprintf("add: %s-backup namespaces=\"%s,%s\" %s", cfg.Site, manifest.Namespace, manifest.EpochNamespace, bytes.TrimSpace(ssh.MarshalAuthorizedKey(signer.PublicKey())))})
				return
			}
		}
	}
	if as.Len() < 2 {
		p.add(Check{Name: name, Err: fmt.Errorf("%s trusts one key only; the other site's key is missing", cfg.AllowedSigners),
			Fix: "add the other site's signing key (its sign_ed25519.pub) with namespaces=\"manifest@squirro-bcp,epoch@squirro-bcp\""})
		return
	}
	p.add(Check{Name: name, Detail: fmt.Sprintf("%s: this site's key and %d other(s)", cfg.AllowedSigners, as.Len()-1)})
}

// checkPathRepo: this site's Elasticsearch must see both channels' es/
// below path.repo: its own to snapshot into, the reverse one to restore
// from after a failover or failback.
func checkPathRepo(ctx context.Context, cfg *config, p *preflight) {
	const name = "elasticsearch path.repo"
	c, err := es.NewClient(cfg.ES)
	if err != nil {
		p.add(Check{Name: name, Err: err, Fix: "check es-url and the credentials"})
		return
	}
	repos, err := c.PathRepo(ctx)
	if err != nil {
		p.add(Check{Name: name, Err: err, Fix: "start Elasticsearch or fix es-url / credentials"})
		return
	}
	locs := []string{cfg.ESRepoLocation}
	if cfg.ReverseChannel != "" {
		locs = append(locs, filepath.Join(cfg.ReverseChannel, manifest.ESDirName))
	}
	for _, loc := range locs {
		for node, roots := range repos {
			if !under(loc, roots) {
				p.add(Check{Name: name, Err: fmt.Errorf("%w: %s is not below path.repo %v of node %s", es.ErrOutsidePathRepo, loc, roots, node),
					Fix: "add the channels' parent directory (e.g. /mnt/bcp) to path.repo in elasticsearch.yml on every node and restart them"})
				return
			}
		}
	}
	p.add(Check{Name: name, Detail: fmt.Sprintf("%d node(s) see %v", len(repos), locs)})
}

// checkConfigs: transfer and restore must be configured on this site too:
// restore for the reverse channel (a failover or failback restores here).
func checkConfigs(cfg *config, p *preflight) {
	for _, prog := range []string{"transfer", "restore"} {
		path := cli.DefaultConfig(prog)
		if v, ok := os.LookupEnv(cli.EnvVar(prog, "config")); ok && v != "" {
			path = v
		}
		name := prog + " config"
		keys, err := cli.ReadConfigKeys(path)
		if err != nil {
			p.add(Check{Name: name, Err: err, Fix: fmt.Sprintf("write %s (examples/%s.toml)", path, prog)})
			continue
		}
		if prog == "restore" {
			want := map[string]string{"channel": cfg.ReverseChannel, "reverse-channel": cfg.Channel, "site": cfg.Site}
			var bad []string
			for k, v := range want {
				if s, _ := keys[k].(string); v != "" && filepath.Clean(s) != filepath.Clean(v) {
					bad = append(bad, fmt.Sprintf("%s = %q, want %q", k, s, v))
				}
			}
			if s, _ := keys["allowed-signers"].(string); s == "" {
				bad = append(bad, "allowed-signers is not set")
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				p.add(Check{Name: name, Err: fmt.Errorf("%s: %v", path, bad),
					Fix: "restore on this site reads the reverse channel (it restores here after a failover or failback) and promotes with this site's key"})
				continue
			}
		}
		p.add(Check{Name: name, Detail: path})
	}
}
