package sshsig_test

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"testing"

	"golang.org/x/crypto/ssh"
)

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func base64Encode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// legacyRSASig builds a well-formed SSHSIG whose signature is a legacy
// SHA-1 "ssh-rsa" one, which must be refused.
func legacyRSASig(t *testing.T, s ssh.Signer, msg string) []byte {
	t.Helper()
	h := sha512.Sum512([]byte(msg))
	data := append([]byte("SSHSIG"), ssh.Marshal(struct {
		Namespace, Reserved, HashAlg string
		Hash                         []byte
	}{ns, "", "sha512", h[:]})...)
	sig, err := s.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSA)
	if err != nil {
		t.Fatal(err)
	}
	raw := append([]byte("SSHSIG"), ssh.Marshal(struct {
		Version                      uint32
		PublicKey                    []byte
		Namespace, Reserved, HashAlg string
		Signature                    []byte
	}{1, s.PublicKey().Marshal(), ns, "", "sha512", ssh.Marshal(sig)})...)
	return []byte("-----BEGIN SSH SIGNATURE-----\n" + base64Encode(raw) + "\n-----END SSH SIGNATURE-----\n")
}
