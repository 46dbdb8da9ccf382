package sshsig

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	magic       = "SSHSIG"
	sigVersion  = 1
	armorBegin  = "-----BEGIN SSH SIGNATURE-----"
	armorEnd    = "-----END SSH SIGNATURE-----"
	armorWidth  = 70
	maxArmored  = 64 << 10
	hashSHA512  = "sha512"
	hashSHA256  = "sha256"
	defaultHash = hashSHA512
)

// Sentinel errors.
var (
	// ErrMalformed means the signature is not a well-formed SSHSIG.
	ErrMalformed = errors.New("malformed SSH signature")
	// ErrBadSignature means the signature does not match the message, the
	// namespace, or uses a forbidden algorithm.
	ErrBadSignature = errors.New("bad SSH signature")
	// ErrNotAllowed means the signature is valid but its key is not trusted
	// by allowed_signers for this namespace at this time.
	ErrNotAllowed = errors.New("signing key not allowed")
)

// blob is the wire form of an SSHSIG signature after the magic preamble.
type blob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// signedData is what the key signs, after the magic preamble.
type signedData struct {
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      []byte
}

func newHash(alg string) (hash.Hash, error) {
	switch alg {
	case hashSHA512:
		return sha512.New(), nil
	case hashSHA256:
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("hash algorithm %q: want sha512 or sha256: %w", alg, ErrMalformed)
}

func toBeSigned(namespace, alg string, message io.Reader) ([]byte, error) {
	h, err := newHash(alg)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(h, message); err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	return append([]byte(magic), ssh.Marshal(signedData{
		Namespace: namespace,
		HashAlg:   alg,
		Hash:      h.Sum(nil),
	})...), nil
}

// Sign signs message for namespace and returns the armored SSHSIG
// signature, as `ssh-keygen -Y sign -n namespace` would. RSA keys sign with
// rsa-sha2-512.
func Sign(signer ssh.Signer, namespace string, message io.Reader) ([]byte, error) {
	if namespace == "" {
		return nil, errors.New("sshsig: empty namespace")
	}
	if signer == nil {
		return nil, errors.New("sshsig: no signer")
	}
	data, err := toBeSigned(namespace, defaultHash, message)
	if err != nil {
		return nil, err
	}
	pub := signer.PublicKey()
	var sig *ssh.Signature
	if isRSA(pub) {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("sshsig: RSA signer cannot sign with rsa-sha2-512 (SHA-1 ssh-rsa signatures are refused by ssh-keygen)")
		}
		sig, err = as.SignWithAlgorithm(nil, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(nil, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: sign with %s key %s: %w", pub.Type(), ssh.FingerprintSHA256(pub), err)
	}
	raw := append([]byte(magic), ssh.Marshal(blob{
		Version:   sigVersion,
		PublicKey: pub.Marshal(),
		Namespace: namespace,
		HashAlg:   defaultHash,
		Signature: ssh.Marshal(sig),
	})...)
	return armor(raw), nil
}

func isRSA(pub ssh.PublicKey) bool {
	t := pub.Type()
	if c, ok := pub.(*ssh.Certificate); ok {
		t = c.Key.Type()
	}
	return t == ssh.KeyAlgoRSA
}

func armor(raw []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > armorWidth {
		b.WriteString(enc[:armorWidth] + "\n")
		enc = enc[armorWidth:]
	}
	b.WriteString(enc + "\n")
	b.WriteString(armorEnd + "\n")
	return b.Bytes()
}

func unarmor(armored []byte) ([]byte, error) {
	if len(armored) > maxArmored {
		return nil, fmt.Errorf("signature larger than %d bytes: %w", maxArmored, ErrMalformed)
	}
	s := strings.TrimSpace(string(armored))
	if !strings.HasPrefix(s, armorBegin) || !strings.HasSuffix(s, armorEnd) {
		return nil, fmt.Errorf("missing %s / %s lines: %w", armorBegin, armorEnd, ErrMalformed)
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, armorBegin), armorEnd)
	s = strings.Join(strings.Fields(s), "")
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64: %v: %w", err, ErrMalformed)
	}
	return raw, nil
}

// Signature is a parsed SSHSIG signature.
type Signature struct {
	PublicKey ssh.PublicKey
	Namespace string
	HashAlg   string
	sig       *ssh.Signature
}

// Parse parses an armored SSHSIG signature without checking it.
func Parse(armored []byte) (*Signature, error) {
	raw, err := unarmor(armored)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(raw, []byte(magic)) {
		return nil, fmt.Errorf("no SSHSIG preamble: %w", ErrMalformed)
	}
	var b blob
	if err := ssh.Unmarshal(raw[len(magic):], &b); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if b.Version != sigVersion {
		return nil, fmt.Errorf("version %d, want %d: %w", b.Version, sigVersion, ErrMalformed)
	}
	if b.Namespace == "" {
		return nil, fmt.Errorf("empty namespace: %w", ErrMalformed)
	}
	if _, err := newHash(b.HashAlg); err != nil {
		return nil, err
	}
	pub, err := ssh.ParsePublicKey(b.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public key: %v: %w", err, ErrMalformed)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(b.Signature, sig); err != nil {
		return nil, fmt.Errorf("signature: %v: %w", err, ErrMalformed)
	}
	return &Signature{PublicKey: pub, Namespace: b.Namespace, HashAlg: b.HashAlg, sig: sig}, nil
}

// verify checks the cryptographic signature over message for namespace; it
// does not decide whether the key is trusted.
func (s *Signature) verify(message io.Reader, namespace string) error {
	if s.Namespace != namespace {
		return fmt.Errorf("namespace %q, want %q: %w", s.Namespace, namespace, ErrBadSignature)
	}
	key := s.PublicKey
	if c, ok := key.(*ssh.Certificate); ok {
		key = c.Key
	}
	if !formatAllowed(key.Type(), s.sig.Format) {
		return fmt.Errorf("signature algorithm %s not allowed for a %s key: %w", s.sig.Format, key.Type(), ErrBadSignature)
	}
	data, err := toBeSigned(namespace, s.HashAlg, message)
	if err != nil {
		return err
	}
	if err := key.Verify(data, s.sig); err != nil {
		return fmt.Errorf("%s key %s: %v: %w", key.Type(), ssh.FingerprintSHA256(key), err, ErrBadSignature)
	}
	return nil
}

// formatAllowed refuses SHA-1 RSA signatures and signatures whose format
// does not belong to the key type.
func formatAllowed(keyType, format string) bool {
	if keyType == ssh.KeyAlgoRSA {
		return format == ssh.KeyAlgoRSASHA512 || format == ssh.KeyAlgoRSASHA256
	}
	return format == keyType
}

// Format is the signature algorithm, e.g. "ssh-ed25519" or "rsa-sha2-512".
func (s *Signature) Format() string { return s.sig.Format }
