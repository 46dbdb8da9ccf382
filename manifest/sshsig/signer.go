package sshsig

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// LoadSigner returns the signer for a private key file, or, if keyFile is
// empty, the first key of the ssh-agent at $SSH_AUTH_SOCK. An encrypted key
// file is refused with advice to load it into ssh-agent instead: this
// program runs unattended and never asks for a passphrase.
func LoadSigner(keyFile string) (ssh.Signer, error) {
	if keyFile == "" {
		return AgentSigner("")
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("signing key %s is encrypted: add it to ssh-agent (ssh-add) and leave the key file setting empty", keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyFile, err)
	}
	return signer, nil
}

// AgentSigner returns the key of the ssh-agent at $SSH_AUTH_SOCK whose
// SHA256 fingerprint ("SHA256:...") is fingerprint, or the agent's first key
// if fingerprint is empty. The agent connection stays open for the life of
// the process.
func AgentSigner(fingerprint string) (ssh.Signer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, errors.New("no signing key file configured and SSH_AUTH_SOCK is not set: configure a key file or start ssh-agent")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent at %s: %w", sock, err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ssh-agent at %s: list keys: %w", sock, err)
	}
	var have []string
	for _, s := range signers {
		fp := ssh.FingerprintSHA256(s.PublicKey())
		if fingerprint == "" || fp == fingerprint {
			return s, nil
		}
		have = append(have, fp)
	}
	_ = conn.Close()
	if fingerprint == "" {
		return nil, fmt.Errorf("ssh-agent at %s holds no keys: add the signing key with ssh-add", sock)
	}
	return nil, fmt.Errorf("ssh-agent at %s has no key %s (it has: %s)", sock, fingerprint, strings.Join(have, ", "))
}
