package manifest

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// The layout of an Elasticsearch fs repository, as a set carries it under
// es/ (ESDirName). Paths here are relative to the repository root,
// slash-separated. backup lists the repository by it (internal/es), Verify
// checks it, the mover orders the copy by it (write-order rule 3:
// data, then the root generation file, then ESIndexLatest).
const (
	// ESIndexLatest names the repository's current generation N: 8 bytes,
	// big endian (ESGeneration). Elasticsearch rewrites it with every
	// snapshot.
	ESIndexLatest = "index.latest"
	esGenPrefix   = "index-"
)

// ESGenerationFile is the root file of generation gen, "index-<gen>", which
// lists every snapshot of the repository at that generation.
func ESGenerationFile(gen int64) string { return esGenPrefix + strconv.FormatInt(gen, 10) }

// IsESGenerationFile reports whether rel is a root generation file,
// "index-" and decimal digits.
func IsESGenerationFile(rel string) bool {
	n, ok := strings.CutPrefix(rel, esGenPrefix)
	if !ok || n == "" {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ESIndexLatestContent is the content of ESIndexLatest naming generation
// gen.
func ESIndexLatestContent(gen int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(gen))
}

// ESGeneration decodes the content of ESIndexLatest; ok is false unless it
// is 8 bytes.
func ESGeneration(data []byte) (gen int64, ok bool) {
	if len(data) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(data)), true
}

// IsESMetadata reports whether rel is repository metadata that a newer
// generation replaces: ESIndexLatest, the root generation files and the
// shard-level index-<gen> files (indices/<index>/<shard>/index-*). A set
// older than the repository's generation needs none of them (see
// "Verification" in DESIGN.md); movers that copy such a set leave them out.
// Every other repository file (data blobs, snap-*.dat, meta-*.dat) is
// immutable until its snapshot is deleted.
func IsESMetadata(rel string) bool {
	if rel == ESIndexLatest || IsESGenerationFile(rel) {
		return true
	}
	el := strings.Split(rel, "/")
	return len(el) == 4 && el[0] == "indices" && strings.HasPrefix(el[3], esGenPrefix)
}
