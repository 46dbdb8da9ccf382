package sshsig_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

const ns = "manifest@squirro-bcp"

type key struct {
	file, pub string
	signer    ssh.Signer
}

func newKey(t *testing.T, typ string) key {
	t.Helper()
	file := filepath.Join(t.TempDir(), "id_"+typ)
	args := []string{"-q", "-t", typ, "-N", "", "-C", "k", "-f", file}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	if _, err := sshKeygen(t, nil, args...); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sshsig.LoadSigner(file)
	if err != nil {
		t.Fatal(err)
	}
	return key{file: file, pub: strings.TrimSpace(string(pub)), signer: s}
}

// sshKeygen runs the real ssh-keygen and returns its output and error.
func sshKeygen(t *testing.T, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatalf("ssh-keygen is required (apt-get install openssh-client): %v", err)
	}
	cmd := exec.Command("ssh-keygen", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil && len(args) > 0 && args[0] == "-q" {
		t.Fatalf("ssh-keygen %v: %v: %s", args, err, out)
	}
	return out, err
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tamper(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x20
	return c
}

// TestInteropWithSSHKeygen: we sign and ssh-keygen verifies; ssh-keygen
// signs and we verify; a tampered byte (in the message or the signature)
// fails both.
func TestInteropWithSSHKeygen(t *testing.T) {
	for _, typ := range []string{"ed25519", "rsa", "ecdsa"} {
		t.Run(typ, func(t *testing.T) {
			k := newKey(t, typ)
			msg := bytes.Repeat([]byte("a manifest\n"), 1000)
			allowedLine := `prod-backup namespaces="` + ns + `" ` + k.pub
			allowedFile := writeFile(t, "allowed_signers", []byte(allowedLine+"\n"))
			as, err := sshsig.LoadAllowedSigners(allowedFile)
			if err != nil {
				t.Fatal(err)
			}
			keygenVerify := func(sig, msg []byte) error {
				sigFile := writeFile(t, "m.sig", sig)
				out, err := sshKeygen(t, msg, "-Y", "verify", "-f", allowedFile, "-I", "prod-backup", "-n", ns, "-s", sigFile)
				if err != nil {
					return errors.New(string(out))
				}
				return nil
			}

			ours, err := sshsig.Sign(k.signer, ns, bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if err := keygenVerify(ours, msg); err != nil {
				t.Fatalf("ssh-keygen rejects our signature: %v", err)
			}
			if err := keygenVerify(ours, tamper(msg)); err == nil {
				t.Fatal("ssh-keygen accepted our signature over a tampered message")
			}
			if err := keygenVerify(tamperSig(t, ours), msg); err == nil {
				t.Fatal("ssh-keygen accepted a tampered signature of ours")
			}

			msgFile := writeFile(t, "manifest.json", msg)
			if _, err := sshKeygen(t, nil, "-q", "-Y", "sign", "-f", k.file, "-n", ns, msgFile); err != nil {
				t.Fatal(err)
			}
			theirs, err := os.ReadFile(msgFile + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			who, err := as.Verify(theirs, bytes.NewReader(msg), ns, time.Now())
			if err != nil || who != "prod-backup" {
				t.Fatalf("we reject ssh-keygen's signature: %q %v", who, err)
			}
			if _, err := as.Verify(theirs, bytes.NewReader(tamper(msg)), ns, time.Now()); !errors.Is(err, sshsig.ErrBadSignature) {
				t.Fatalf("tampered message: %v", err)
			}
			if _, err := as.Verify(tamperSig(t, theirs), bytes.NewReader(msg), ns, time.Now()); err == nil {
				t.Fatal("we accepted a tampered signature of ssh-keygen")
			}
		})
	}
}

// tamperSig flips a bit in the signature bytes at the end of the blob, so
// the armor and structure stay valid and only the cryptography fails.
func tamperSig(t *testing.T, armored []byte) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(armored)), "\n")
	body := strings.Join(lines[1:len(lines)-1], "")
	raw, err := base64Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-5] ^= 0x01
	return []byte(lines[0] + "\n" + base64Encode(raw) + "\n" + lines[len(lines)-1] + "\n")
}

func TestRSAUsesSHA2(t *testing.T) {
	k := newKey(t, "rsa")
	sig, err := sshsig.Sign(k.signer, ns, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sshsig.Parse(sig)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Format(); got != ssh.KeyAlgoRSASHA512 {
		t.Fatalf("RSA signature format %s, want %s", got, ssh.KeyAlgoRSASHA512)
	}
	// A legacy SHA-1 signature made by hand is refused.
	legacy := legacyRSASig(t, k.signer, "x")
	as, _ := sshsig.ParseAllowedSigners(strings.NewReader("p " + k.pub))
	if _, err := as.Verify(legacy, strings.NewReader("x"), ns, time.Now()); !errors.Is(err, sshsig.ErrBadSignature) {
		t.Fatalf("ssh-rsa (SHA-1) signature: %v, want ErrBadSignature", err)
	}
}

func TestAllowedSigners(t *testing.T) {
	k := newKey(t, "ed25519")
	other := newKey(t, "ed25519")
	sig, err := sshsig.Sign(k.signer, ns, strings.NewReader("m"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		allowed string
		want    error
		who     string
	}{
		{"plain", "a,b " + k.pub, nil, "a,b"},
		{"quoted principals and comments", "# keys\n\n\"x y\" " + k.pub + "\n", nil, "x y"},
		{"namespace pattern", `p namespaces="other,manifest@*" ` + k.pub, nil, "p"},
		{"namespace negated", `p namespaces="*,!manifest@*" ` + k.pub, sshsig.ErrNotAllowed, ""},
		{"other namespace", `p namespaces="file" ` + k.pub, sshsig.ErrNotAllowed, ""},
		{"valid window", `p valid-after="20260101",valid-before="20270101Z" ` + k.pub, nil, "p"},
		{"expired", `p valid-before="20260501000000Z" ` + k.pub, sshsig.ErrNotAllowed, ""},
		{"not yet valid", `p valid-after="202607010000Z" ` + k.pub, sshsig.ErrNotAllowed, ""},
		{"other key only", "p " + other.pub, sshsig.ErrNotAllowed, ""},
		{"second line", "q " + other.pub + "\nr " + k.pub, nil, "r"},
		{"plain key is not a CA", "p cert-authority " + k.pub, sshsig.ErrNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := sshsig.ParseAllowedSigners(strings.NewReader(tt.allowed))
			if err != nil {
				t.Fatal(err)
			}
			who, err := as.Verify(sig, strings.NewReader("m"), ns, now)
			if !errors.Is(err, tt.want) || who != tt.who {
				t.Fatalf("Verify = %q, %v; want %q, %v", who, err, tt.who, tt.want)
			}
		})
	}
	for _, bad := range []string{"p", `p unknown-option ` + k.pub, `p valid-after="2026" ` + k.pub, `"p ` + k.pub, "p ssh-ed25519 !!!"} {
		if _, err := sshsig.ParseAllowedSigners(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestCertificateAuthority: a key certified by a CA listed with
// cert-authority is accepted for the certificate's principal, as ssh-keygen
// does.
func TestCertificateAuthority(t *testing.T) {
	ca := newKey(t, "ed25519")
	k := newKey(t, "ed25519")
	if _, err := sshKeygen(t, nil, "-q", "-s", ca.file, "-I", "cert1", "-n", "prod-backup", "-V", "+1h", k.file+".pub"); err != nil {
		t.Fatal(err)
	}
	certData, err := os.ReadFile(k.file + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certData)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(pub.(*ssh.Certificate), k.signer)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sshsig.Sign(cs, ns, strings.NewReader("m"))
	if err != nil {
		t.Fatal(err)
	}
	allowedFile := writeFile(t, "allowed", []byte("prod-* cert-authority "+ca.pub+"\n"))
	as, _ := sshsig.LoadAllowedSigners(allowedFile)
	if who, err := as.Verify(sig, strings.NewReader("m"), ns, time.Now()); err != nil || who != "prod-*" {
		t.Fatalf("cert: %q %v", who, err)
	}
	if _, err := as.Verify(sig, strings.NewReader("m"), ns, time.Now().Add(2*time.Hour)); !errors.Is(err, sshsig.ErrNotAllowed) {
		t.Fatalf("expired cert: %v", err)
	}
	out, err := sshKeygen(t, []byte("m"), "-Y", "verify", "-f", allowedFile, "-I", "prod-backup", "-n", ns, "-s", writeFile(t, "s", sig))
	if err != nil {
		t.Fatalf("ssh-keygen rejects our certificate signature: %s", out)
	}
}

func TestAgentSigner(t *testing.T) {
	if _, err := exec.LookPath("ssh-agent"); err != nil {
		t.Fatalf("ssh-agent is required (apt-get install openssh-client): %v", err)
	}
	k := newKey(t, "rsa")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	// The agent prints its environment once it listens.
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("ssh-agent did not start: %v", err)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	if out, err := exec.Command("ssh-add", k.file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	s, err := sshsig.LoadSigner("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sshsig.AgentSigner(ssh.FingerprintSHA256(k.signer.PublicKey())); err != nil {
		t.Fatal(err)
	}
	if _, err := sshsig.AgentSigner("SHA256:nope"); err == nil {
		t.Fatal("unknown fingerprint accepted")
	}
	sig, err := sshsig.Sign(s, ns, strings.NewReader("m"))
	if err != nil {
		t.Fatal(err)
	}
	as, _ := sshsig.ParseAllowedSigners(strings.NewReader("p " + k.pub))
	if _, err := as.Verify(sig, strings.NewReader("m"), ns, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestMalformed(t *testing.T) {
	k := newKey(t, "ed25519")
	good, _ := sshsig.Sign(k.signer, ns, strings.NewReader("m"))
	as, _ := sshsig.ParseAllowedSigners(strings.NewReader("p " + k.pub))
	for name, sig := range map[string][]byte{
		"empty":      nil,
		"no armor":   []byte("hello"),
		"bad base64": []byte("-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n"),
		"truncated":  append(bytes.Clone(good[:len(good)/2]), []byte("\n-----END SSH SIGNATURE-----\n")...),
		"huge":       bytes.Repeat([]byte("A"), 1<<20),
	} {
		if _, err := as.Verify(sig, strings.NewReader("m"), ns, time.Now()); !errors.Is(err, sshsig.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := as.Verify(good, strings.NewReader("m"), "other@ns", time.Now()); !errors.Is(err, sshsig.ErrBadSignature) {
		t.Errorf("wrong namespace: %v", err)
	}
}

func TestEncryptedKeyFileRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "id")
	if _, err := sshKeygen(t, nil, "-q", "-t", "ed25519", "-N", "secret", "-f", file); err != nil {
		t.Fatal(err)
	}
	_, err := sshsig.LoadSigner(file)
	if err == nil || !strings.Contains(err.Error(), "ssh-agent") {
		t.Fatalf("encrypted key: %v", err)
	}
}
