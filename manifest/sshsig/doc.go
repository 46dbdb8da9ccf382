// Package sshsig signs and verifies data in OpenSSH's SSHSIG format
// (PROTOCOL.sshsig), so that a manifest we sign can be checked with stock
// `ssh-keygen -Y verify` and one that ssh-keygen signed is accepted here.
//
// Signing hashes the message (streamed, SHA-512), builds the small
// "to be signed" blob
//
//	"SSHSIG" || string(namespace) || string("") || string("sha512") || string(H(message))
//
// and has the key sign it: a private key file or a key in ssh-agent, so the
// key need not be on disk. RSA keys always sign with rsa-sha2-512; the
// legacy SHA-1 "ssh-rsa" signature is never produced and never accepted.
// The result is the armored blob
//
//	"SSHSIG" || uint32(1) || string(publickey) || string(namespace) ||
//	string("") || string(hash_alg) || string(signature)
//
// Verification never trusts the public key embedded in a signature by
// itself: the key must appear in an allowed_signers file (ssh-keygen(1),
// "ALLOWED SIGNERS") for the namespace and at the given time. Supported
// options are namespaces=, valid-after=, valid-before= and cert-authority
// (for OpenSSH user certificates signed by the listed CA; the certificate's
// principal must match the line's principals).
package sshsig
