package mover

import (
	"bytes"
	"fmt"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// SignatureVerifier returns an Options.VerifySignature that accepts a
// manifest signed, for manifest.Namespace, by a key that allowed trusts now.
func SignatureVerifier(allowed *sshsig.AllowedSigners) func(data, sig []byte) error {
	return func(data, sig []byte) error {
		if _, err := allowed.Verify(sig, bytes.NewReader(data), manifest.Namespace, time.Now()); err != nil {
			return fmt.Errorf("%w: %w", manifest.ErrNotAuthentic, err)
		}
		return nil
	}
}
