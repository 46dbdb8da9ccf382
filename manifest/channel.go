package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxChannelFile bounds channel.json; it holds three short names.
const maxChannelFile = 64 << 10

// Validate checks that a channel identity is usable: a name that is a single
// safe path element, and two different, non-empty site names.
func (c Channel) Validate() error {
	if err := checkName("channel name", c.Name); err != nil {
		return err
	}
	if err := checkName("channel source", c.Source); err != nil {
		return err
	}
	if err := checkName("channel target", c.Target); err != nil {
		return err
	}
	if c.Source == c.Target {
		return fmt.Errorf("channel %q: source and target are both %q: %w", c.Name, c.Source, ErrInvalid)
	}
	return nil
}

// String is "name (source -> target)".
func (c Channel) String() string {
	return fmt.Sprintf("%s (%s -> %s)", c.Name, c.Source, c.Target)
}

// Matches reports whether c agrees with want on every field that want sets;
// an empty field in want is not checked.
func (c Channel) Matches(want Channel) bool {
	return (want.Name == "" || want.Name == c.Name) &&
		(want.Source == "" || want.Source == c.Source) &&
		(want.Target == "" || want.Target == c.Target)
}

// checkName accepts a short name usable as one path element.
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
	case len(s) > 255:
		return fmt.Errorf("%s is longer than 255 bytes: %w", what, ErrInvalid)
	case s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") || strings.HasPrefix(s, TempPrefix):
		return fmt.Errorf("%s %q: must be a plain name (no slash, NUL, \".\" or \"..\"): %w", what, s, ErrInvalid)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q: contains a control character: %w", what, s, ErrInvalid)
		}
	}
	return nil
}

// ReadChannel reads and validates <root>/channel.json. A missing file is an
// error wrapping fs.ErrNotExist: the directory is not a channel (yet).
func ReadChannel(root string) (Channel, error) {
	l := Layout{Root: root}
	data, err := readLimited(l.ChannelFile(), maxChannelFile)
	if err != nil {
		return Channel{}, fmt.Errorf("read channel identity: %w", err)
	}
	return decodeChannel(l.ChannelFile(), data)
}

func decodeChannel(path string, data []byte) (Channel, error) {
	var c Channel
	if err := decodeStrict(data, &c, true); err != nil {
		return Channel{}, fmt.Errorf("channel identity %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Channel{}, fmt.Errorf("channel identity %s: %w", path, err)
	}
	return c, nil
}

// WriteChannel creates a channel at root: the directory and its es/,
// objects/, sets/, pins/ and locks/ subdirectories, and channel.json written
// atomically. It is idempotent for the same identity and refuses (wrapping
// ErrNotForUs) to overwrite a different one.
func WriteChannel(root string, c Channel) error {
	if err := c.Validate(); err != nil {
		return err
	}
	l := Layout{Root: root}
	for _, d := range []string{root, l.ESDir(), l.ObjectsDir(), l.SetsDir(), l.PinsDir(), l.LocksDir()} {
		if err := os.MkdirAll(d, DirPerm); err != nil {
			return fmt.Errorf("create channel %s: %w", root, err)
		}
	}
	old, err := ReadChannel(root)
	switch {
	case err == nil:
		if old != c {
			return fmt.Errorf("channel %s already has identity %s, refusing to change it to %s: %w", root, old, c, ErrNotForUs)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	err = CreateAtomic(l.ChannelFile(), FilePerm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if errors.Is(err, fs.ErrExist) {
		// Someone created it at the same time: accept only the same identity.
		return WriteChannel(root, c)
	}
	if err != nil {
		return err
	}
	return SyncDir(root)
}

// readLimited reads a whole small file, refusing one larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, path, limit)
}

func readAllLimited(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", name, limit, ErrInvalid)
	}
	return data, nil
}

// decodeStrict decodes one JSON value, refusing trailing data and, if
// strict, unknown fields.
func decodeStrict(data []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %v: %w", err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("malformed JSON: data after the document: %w", ErrInvalid)
	}
	return nil
}
