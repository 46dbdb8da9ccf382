package sshsig_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// FuzzVerify: a signature file read from NFS never makes verification
// panic, and garbage is never accepted. Seeds: testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(seedSig))
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"))
	as, err := sshsig.ParseAllowedSigners(strings.NewReader("p " + seedPub))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig []byte) {
		_, err := as.Verify(sig, strings.NewReader("m"), ns, time.Now())
		if err == nil {
			if string(sig) != seedSig {
				// Only a valid signature over "m" by the seed key may pass;
				// armor variations of the seed are fine.
				if _, perr := sshsig.Parse(sig); perr != nil {
					t.Fatalf("accepted unparsable signature %q", sig)
				}
			}
			return
		}
		if !errors.Is(err, sshsig.ErrMalformed) && !errors.Is(err, sshsig.ErrBadSignature) && !errors.Is(err, sshsig.ErrNotAllowed) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
	})
}

// FuzzParseAllowedSigners: no allowed_signers text makes the parser panic.
func FuzzParseAllowedSigners(f *testing.F) {
	f.Add("p " + seedPub)
	f.Add(`"a b",c namespaces="x,!y",valid-after="20260101Z" ` + seedPub + " comment")
	f.Add("p cert-authority " + seedPub)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = sshsig.ParseAllowedSigners(strings.NewReader(s))
	})
}

// A fixed key and `ssh-keygen -Y sign -n manifest@squirro-bcp` of "m".
const (
	seedPub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKE9RKG9lXrggpCmnRVfQH/jkBnsZsd3y57uaW5b3hay seed"
	seedSig = `-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgoT1Eob2VeuCCkKadFV9Af+OQGe
xmx3fLnu5pblveFrIAAAAUbWFuaWZlc3RAc3F1aXJyby1iY3AAAAAAAAAABnNoYTUxMgAA
AFMAAAALc3NoLWVkMjU1MTkAAABAMwVko8rLo0tGhfr06U18mzGnL6AnLME6UAALPAfwPH
HjRDRr4VMdmvJ3ieMZ/iIqXluncU6339tKuGRV1RaVCQ==
-----END SSH SIGNATURE-----
`
)

func TestSeedSignature(t *testing.T) {
	as, _ := sshsig.ParseAllowedSigners(strings.NewReader("p " + seedPub))
	if _, err := as.Verify([]byte(seedSig), strings.NewReader("m"), ns, time.Now()); err != nil {
		t.Fatal(err)
	}
}
