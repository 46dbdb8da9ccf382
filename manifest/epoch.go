package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// Fencing (DESIGN.md, "Fencing"). A channel records its epoch in signed
// epoch records, <channel>/epochs/<epoch>.json and its SSHSIG signature
// <epoch>.json.sig (namespace EpochNamespace), one pair per promotion. A
// record is written once and never changed; the channel's epoch is that of
// the highest record whose signature a trusted key made. Unsigned, badly
// signed or malformed records are ignored (and reported): nobody without a
// signing key can raise the epoch (and so stop every set), and nobody can
// lower it by editing a record. Deleting records can lower it; readers
// therefore also keep the highest epoch they have seen (MinEpoch).

// EpochNamespace is the SSHSIG namespace of epoch records. It differs from
// Namespace so that a manifest's signature can never pass for a record's.
const EpochNamespace = "epoch@squirro-bcp"

// EpochsDirName holds a channel's epoch records.
const EpochsDirName = "epochs"

// maxEpochFile bounds an epoch record.
const maxEpochFile = 64 << 10

// ErrSuperseded means a set was made in an epoch older than the one its
// channel records: by a site that another one has since replaced as the
// active site (a late set). It is a kind of ErrStale (exit code 6).
var ErrSuperseded error = supersededError{}

type supersededError struct{}

func (supersededError) Error() string { return "set from a superseded epoch" }
func (supersededError) Unwrap() error { return ErrStale }

// EpochRecord says that from Epoch on, Active is the active site of the
// pair the channel belongs to. It is written by a promotion into both
// channels of the pair (each record names its own channel).
type EpochRecord struct {
	Channel Channel   `json:"channel"`
	Epoch   uint64    `json:"epoch"`
	Active  string    `json:"active"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
}

// String is "epoch N (bcp active since 2026-...Z, by host)".
func (r *EpochRecord) String() string {
	if r == nil {
		return "no epoch recorded"
	}
	return fmt.Sprintf("epoch %d (%s active since %s, promoted on %s)", r.Epoch, r.Active, r.Created.UTC().Format(time.RFC3339), r.Host)
}

// EpochFileName is the record's file name in epochs/: the zero-padded
// epoch (so names sort by epoch) and ".json".
func EpochFileName(epoch uint64) string { return fmt.Sprintf("%010d.json", epoch) }

// EpochsDir is <root>/epochs.
func (l Layout) EpochsDir() string { return l.Root + string(os.PathSeparator) + EpochsDirName }

func (r *EpochRecord) validate() error {
	if err := r.Channel.Validate(); err != nil {
		return err
	}
	if r.Epoch == 0 {
		return fmt.Errorf("epoch record: epoch 0: %w", ErrInvalid)
	}
	if err := checkName("epoch record active site", r.Active); err != nil {
		return err
	}
	if r.Active != r.Channel.Source && r.Active != r.Channel.Target {
		return fmt.Errorf("epoch record: active site %q is neither end of channel %s: %w", r.Active, r.Channel, ErrInvalid)
	}
	if !plausibleTime(r.Created) {
		return fmt.Errorf("epoch record: implausible time %s: %w", r.Created, ErrInvalid)
	}
	return checkText("epoch record host", r.Host, false)
}

// ChannelEpoch is what a channel's epochs/ directory says.
type ChannelEpoch struct {
	// Record is the highest record with a trusted signature; nil: none.
	Record *EpochRecord
	// Ignored lists records that were not accepted, with the reason.
	Ignored []string
}

// Epoch is the channel's recorded epoch, 0 when none is.
func (c ChannelEpoch) Epoch() uint64 {
	if c.Record == nil {
		return 0
	}
	return c.Record.Epoch
}

// ReadEpoch reads the epoch records of the channel at root, highest first,
// and returns the first that is signed by a key allowed_signers trusts for
// EpochNamespace, is well formed, names channel ch and the epoch of its file
// name. A missing epochs/ directory is no record. Only an I/O error on the
// directory itself is an error; a bad record is ignored and listed.
func ReadEpoch(root string, ch Channel, allowed *sshsig.AllowedSigners, now time.Time) (ChannelEpoch, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return ChannelEpoch{}, fmt.Errorf("read epoch of %s: %w", root, err)
	}
	defer r.Close()
	return readEpoch(r, root, ch, allowed, now)
}

func readEpoch(r *os.Root, root string, ch Channel, allowed *sshsig.AllowedSigners, now time.Time) (ChannelEpoch, error) {
	var out ChannelEpoch
	ents, err := fs.ReadDir(r.FS(), EpochsDirName)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("read epoch records in %s: %w", root, err)
	}
	type cand struct {
		n    uint64
		name string
	}
	var cands []cand
	for _, e := range ents {
		name := e.Name()
		num, ok := strings.CutSuffix(name, ".json")
		if !ok || len(num) != 10 {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || EpochFileName(n) != name {
			continue
		}
		cands = append(cands, cand{n, name})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].n > cands[j].n })
	for _, c := range cands {
		rec, err := readEpochRecord(r, c.name, ch, allowed, now)
		if err != nil {
			out.Ignored = append(out.Ignored, fmt.Sprintf("%s/%s: %v", EpochsDirName, c.name, err))
			continue
		}
		if rec.Epoch != c.n {
			out.Ignored = append(out.Ignored, fmt.Sprintf("%s/%s: holds epoch %d", EpochsDirName, c.name, rec.Epoch))
			continue
		}
		out.Record = rec
		break
	}
	return out, nil
}

func readEpochRecord(r *os.Root, name string, ch Channel, allowed *sshsig.AllowedSigners, now time.Time) (*EpochRecord, error) {
	read := func(n string) ([]byte, error) {
		f, err := r.Open(path.Join(EpochsDirName, n))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readAllLimited(f, n, maxEpochFile)
	}
	data, err := read(name)
	if err != nil {
		return nil, err
	}
	sig, err := read(name + ".sig")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("not signed (a promotion died before signing, or someone else wrote it)")
	}
	if err != nil {
		return nil, err
	}
	if allowed == nil {
		return nil, errors.New("no allowed_signers to check it with")
	}
	if _, err := allowed.Verify(sig, bytes.NewReader(data), EpochNamespace, now); err != nil {
		return nil, fmt.Errorf("signature not accepted (allowed_signers must trust the promoting site's key for namespace %s): %w", EpochNamespace, err)
	}
	var rec EpochRecord
	if err := decodeStrict(data, &rec, true); err != nil {
		return nil, err
	}
	if err := rec.validate(); err != nil {
		return nil, err
	}
	if rec.Channel != ch {
		return nil, fmt.Errorf("record is for channel %s, not %s: %w", rec.Channel, ch, ErrNotForUs)
	}
	return &rec, nil
}

// WriteEpoch signs rec and writes it into the channel at root: the record,
// then its signature, each under a temporary name, fsynced and linked to
// its final name (never replacing an existing file). A leftover unsigned
// record of the same epoch (a promotion that died before signing) is
// replaced; a signed one is never: ErrSetExists.
func WriteEpoch(root string, rec *EpochRecord, signer ssh.Signer) error {
	if err := rec.validate(); err != nil {
		return err
	}
	rec.Created = rec.Created.UTC()
	data, err := encodeEpoch(rec)
	if err != nil {
		return err
	}
	sig, err := sshsig.Sign(signer, EpochNamespace, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("sign epoch record: %w", err)
	}
	dir := Layout{Root: root}.EpochsDir()
	if err := os.MkdirAll(dir, DirPerm); err != nil {
		return fmt.Errorf("write epoch record: %w", err)
	}
	file := dir + string(os.PathSeparator) + EpochFileName(rec.Epoch)
	if _, err := os.Lstat(file + ".sig"); err == nil {
		return fmt.Errorf("write epoch record: %s is already signed; an epoch is recorded once: %w", file, ErrSetExists)
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write epoch record: remove unsigned leftover: %w", err)
	}
	write := func(b []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(b); return err }
	}
	if err := CreateAtomic(file, FilePerm, write(data)); err != nil {
		return fmt.Errorf("write epoch record: %w", err)
	}
	if err := CreateAtomic(file+".sig", FilePerm, write(sig)); err != nil {
		return fmt.Errorf("write epoch record: signature (the record does not count until signed): %w", err)
	}
	return nil
}

func encodeEpoch(rec *EpochRecord) ([]byte, error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode epoch record: %w", err)
	}
	return append(data, '\n'), nil
}
