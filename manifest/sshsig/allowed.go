package sshsig

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// AllowedSigners is a parsed OpenSSH allowed_signers file: which keys may
// sign for which principals, namespaces and times.
type AllowedSigners struct {
	entries []allowedEntry
}

type allowedEntry struct {
	line          int
	principals    []string // patterns
	certAuthority bool
	namespaces    []string // patterns; nil = any
	validAfter    time.Time
	validBefore   time.Time
	key           ssh.PublicKey
}

// maxAllowedSigners bounds the size of an allowed_signers file.
const maxAllowedSigners = 4 << 20

// LoadAllowedSigners reads an allowed_signers file.
func LoadAllowedSigners(path string) (*AllowedSigners, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("allowed signers: %w", err)
	}
	defer f.Close()
	a, err := ParseAllowedSigners(f)
	if err != nil {
		return nil, fmt.Errorf("allowed signers %s: %w", path, err)
	}
	return a, nil
}

// ParseAllowedSigners parses allowed_signers text (ssh-keygen(1), "ALLOWED
// SIGNERS"): lines of "principals [options] keytype base64-key [comment]",
// with blank lines and # comments. An unknown option is an error, so that a
// restriction is never silently ignored.
func ParseAllowedSigners(r io.Reader) (*AllowedSigners, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAllowedSigners+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxAllowedSigners {
		return nil, fmt.Errorf("larger than %d bytes", maxAllowedSigners)
	}
	a := new(AllowedSigners)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxAllowedSigners)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseAllowedLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		e.line = n
		a.entries = append(a.entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return a, nil
}

// Len is the number of keys listed.
func (a *AllowedSigners) Len() int { return len(a.entries) }

func parseAllowedLine(line string) (allowedEntry, error) {
	var e allowedEntry
	principals, rest, err := nextToken(line)
	if err != nil {
		return e, err
	}
	if principals == "" || rest == "" {
		return e, fmt.Errorf("want principals, options, key")
	}
	e.principals = strings.Split(principals, ",")
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return e, fmt.Errorf("key: %v", err)
	}
	e.key = key
	for _, o := range options {
		name, val, hasVal := strings.Cut(o, "=")
		name = strings.ToLower(name)
		if hasVal {
			val = strings.Trim(val, `"`)
		}
		switch {
		case name == "cert-authority" && !hasVal:
			e.certAuthority = true
		case name == "namespaces" && hasVal:
			e.namespaces = strings.Split(val, ",")
		case name == "valid-after" && hasVal:
			if e.validAfter, err = parseValidTime(val); err != nil {
				return e, err
			}
		case name == "valid-before" && hasVal:
			if e.validBefore, err = parseValidTime(val); err != nil {
				return e, err
			}
		default:
			return e, fmt.Errorf("unsupported option %q", o)
		}
	}
	return e, nil
}

// nextToken splits off the first whitespace-separated token, which may be
// double-quoted.
func nextToken(s string) (tok, rest string, err error) {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, `"`) {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", "", fmt.Errorf("unterminated quote")
		}
		return s[1 : 1+end], strings.TrimLeft(s[2+end:], " \t"), nil
	}
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", nil
	}
	return s[:i], strings.TrimLeft(s[i:], " \t"), nil
}

// parseValidTime parses YYYYMMDD[HHMM[SS]][Z]; without Z it is local time,
// as in ssh-keygen.
func parseValidTime(s string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		s, loc = s[:len(s)-1], time.UTC
	}
	var layout string
	switch len(s) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Errorf("time %q: want YYYYMMDD[HHMM[SS]][Z]", s)
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %v", s, err)
	}
	return t, nil
}

// Verify checks an armored SSHSIG signature over message for namespace at
// time now and returns the principals of the allowed_signers line that
// trusts the key (comma-separated, as written there). Errors wrap
// ErrMalformed, ErrBadSignature or ErrNotAllowed.
func (a *AllowedSigners) Verify(armored []byte, message io.Reader, namespace string, now time.Time) (string, error) {
	sig, err := Parse(armored)
	if err != nil {
		return "", err
	}
	if err := sig.verify(message, namespace); err != nil {
		return "", err
	}
	if a == nil {
		return "", fmt.Errorf("no allowed signers: %w", ErrNotAllowed)
	}
	var why []string
	for _, e := range a.entries {
		if err := e.allows(sig.PublicKey, namespace, now); err != nil {
			if _, other := err.(errSkip); other {
				continue
			}
			why = append(why, fmt.Sprintf("line %d: %v", e.line, err))
			continue
		}
		return strings.Join(e.principals, ","), nil
	}
	msg := fmt.Sprintf("%s key %s is not in allowed_signers", sig.PublicKey.Type(), ssh.FingerprintSHA256(keyOf(sig.PublicKey)))
	if len(why) > 0 {
		msg = fmt.Sprintf("%s key %s: %s", sig.PublicKey.Type(), ssh.FingerprintSHA256(keyOf(sig.PublicKey)), strings.Join(why, "; "))
	}
	return "", fmt.Errorf("%s: %w", msg, ErrNotAllowed)
}

func keyOf(pub ssh.PublicKey) ssh.PublicKey {
	if c, ok := pub.(*ssh.Certificate); ok {
		return c.Key
	}
	return pub
}

// errSkip marks an entry for another key; it is not worth reporting.
type errSkip struct{}

func (errSkip) Error() string { return "other key" }

func (e *allowedEntry) allows(pub ssh.PublicKey, namespace string, now time.Time) error {
	cert, isCert := pub.(*ssh.Certificate)
	switch {
	case e.certAuthority && isCert:
		if !bytes.Equal(cert.SignatureKey.Marshal(), e.key.Marshal()) {
			return errSkip{}
		}
		if cert.CertType != ssh.UserCert {
			return fmt.Errorf("certificate is not a user certificate")
		}
		principal := ""
		for _, p := range cert.ValidPrincipals {
			if matchList(p, e.principals) {
				principal = p
				break
			}
		}
		if principal == "" {
			return fmt.Errorf("certificate principals %q do not match %q", cert.ValidPrincipals, strings.Join(e.principals, ","))
		}
		checker := &ssh.CertChecker{Clock: func() time.Time { return now }}
		if err := checker.CheckCert(principal, cert); err != nil {
			return fmt.Errorf("certificate: %v", err)
		}
	case !e.certAuthority && !isCert:
		if !bytes.Equal(pub.Marshal(), e.key.Marshal()) {
			return errSkip{}
		}
	default:
		return errSkip{}
	}
	if e.namespaces != nil && !matchList(namespace, e.namespaces) {
		return fmt.Errorf("namespace %q not in namespaces=%q", namespace, strings.Join(e.namespaces, ","))
	}
	if !e.validAfter.IsZero() && now.Before(e.validAfter) {
		return fmt.Errorf("key valid only after %s", e.validAfter.Format(time.RFC3339))
	}
	if !e.validBefore.IsZero() && !now.Before(e.validBefore) {
		return fmt.Errorf("key valid only before %s", e.validBefore.Format(time.RFC3339))
	}
	return nil
}

// matchList is OpenSSH's match_pattern_list: s must match a pattern and no
// negated ("!pattern") one.
func matchList(s string, patterns []string) bool {
	matched := false
	for _, p := range patterns {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if wildcard(neg, s) {
				return false
			}
			continue
		}
		if wildcard(p, s) {
			matched = true
		}
	}
	return matched
}

// wildcard matches s against p where '*' is any run and '?' any one byte.
func wildcard(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if wildcard(p, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}
