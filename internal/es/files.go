package es

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/squirro-bcp/bcp/manifest"
)

// Generation reads index.latest of the fs repository at dir: the current
// repository generation (the N of index-N).
func Generation(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifest.ESIndexLatest))
	if err != nil {
		return 0, fmt.Errorf("elasticsearch repository %s: %w", dir, err)
	}
	gen, ok := manifest.ESGeneration(b)
	if !ok {
		return 0, fmt.Errorf("elasticsearch repository %s: %s has %d bytes, want 8", dir, manifest.ESIndexLatest, len(b))
	}
	return gen, nil
}

// skip reports whether a repository path (slash-separated, relative) is not
// part of any snapshot.
func skip(rel string, isDir bool) bool {
	base := rel[strings.LastIndexByte(rel, '/')+1:]
	if strings.HasPrefix(base, ".") || strings.HasPrefix(base, "pending-") || strings.HasPrefix(base, "tests-") {
		return true
	}
	return false
}

// RepoFiles lists the files of the fs repository at dir that a set needs,
// sorted in manifest.ComparePaths order, hashing only files not in known
// (path -> ESFile of an earlier set) with the same size. index.latest is
// always hashed. Root index-N files of other generations are left out.
// hashed receives the bytes read (progress); it may be nil.
func RepoFiles(ctx context.Context, dir string, gen int64, known map[string]manifest.ESFile, hashed func(n int64)) ([]manifest.ESFile, int64, error) {
	var out []manifest.ESFile
	var readBytes int64
	genName := manifest.ESGenerationFile(gen)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p == dir {
			return nil
		}
		rel := filepath.ToSlash(p[len(dir)+1:])
		if skip(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if manifest.IsESGenerationFile(rel) && rel != genName {
			return nil // an older root generation, not needed
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if k, ok := known[rel]; ok && k.Size == info.Size() && rel != manifest.ESIndexLatest {
			out = append(out, k)
			return nil
		}
		sum, n, err := hashFile(p)
		if err != nil {
			return err
		}
		readBytes += n
		if hashed != nil {
			hashed(n)
		}
		out = append(out, manifest.ESFile{Path: rel, Size: n, SHA256: sum})
		return nil
	})
	if err != nil {
		return nil, readBytes, fmt.Errorf("list elasticsearch repository %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return manifest.ComparePaths(out[i].Path, out[j].Path) < 0 })
	return out, readBytes, nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
