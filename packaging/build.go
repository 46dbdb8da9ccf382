package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// programs are the three programs the package holds, each the main package
// of the module of the same name.
var programs = []string{"backup", "transfer", "restore"}

// formats are the package formats built for each architecture.
var formats = []string{"deb", "rpm"}

// Options say what to build.
type Options struct {
	Root    string   // the repository
	Out     string   // where the packages are written
	Version string   // package version, e.g. 0.1.0 or 0.1.0~dev.42
	Commit  string   // the commit built, shown by --version
	Arches  []string // Go architectures: amd64, arm64
}

// versionRE is what dpkg and rpm both accept as an upstream version (no '-',
// which would start a release; '~' sorts before the release it precedes).
var versionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

func (o Options) validate() error {
	if !versionRE.MatchString(o.Version) {
		return fmt.Errorf("%w: version %q: want digits first, then letters, digits, '.', '+', '~' (e.g. 0.1.0 or 0.1.0~dev.42)", errUsage, o.Version)
	}
	if o.Commit == "" {
		return fmt.Errorf("%w: no commit given (-commit)", errUsage)
	}
	if len(o.Arches) == 0 {
		return fmt.Errorf("%w: no architecture given (-arch amd64,arm64)", errUsage)
	}
	for _, a := range o.Arches {
		if a != "amd64" && a != "arm64" {
			return fmt.Errorf("%w: architecture %q: want amd64 or arm64", errUsage, a)
		}
	}
	if _, err := os.Stat(filepath.Join(o.Root, "packaging", "nfpm.yaml")); err != nil {
		return fmt.Errorf("%w: %s is not the repository root: %v", errUsage, o.Root, err)
	}
	return nil
}

// Build builds the packages and returns their paths: for each architecture
// a .deb and an .rpm.
func Build(ctx context.Context, o Options) ([]string, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	// Absolute: go build runs in each program's directory.
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	work, err := os.MkdirTemp(o.Out, ".tmp-build-")
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()

	// Man pages and completion: from a build for this machine.
	host := filepath.Join(work, "host")
	if err := buildPrograms(ctx, root, host, runtime.GOARCH, o); err != nil {
		return nil, err
	}
	docs := filepath.Join(work, "docs")
	if err := generateDocs(ctx, host, docs); err != nil {
		return nil, err
	}

	var built []string
	for _, arch := range o.Arches {
		stage := filepath.Join(work, arch)
		bin := filepath.Join(stage, "bin")
		if arch == runtime.GOARCH {
			bin = filepath.Join(host, "bin")
		} else if err := buildPrograms(ctx, root, stage, arch, o); err != nil {
			return nil, err
		}
		for _, format := range formats {
			p, err := writePackage(root, o.Out, format, arch, o.Version, bin, docs)
			if err != nil {
				return built, err
			}
			built = append(built, p)
		}
	}
	return built, nil
}

// buildPrograms builds the three programs for arch into dir/bin.
func buildPrograms(ctx context.Context, root, dir, arch string, o Options) error {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", o.Version, o.Commit)
	for _, p := range programs {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(bin, p), ".")
		cmd.Dir = filepath.Join(root, p)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s for linux/%s: %w\n%s", p, arch, err, out)
		}
	}
	return nil
}

// generateDocs runs `<program> generate` of the programs in host/bin and
// writes docs/man/<program>.1.gz, docs/bash/<program>, docs/zsh/_<program>.
func generateDocs(ctx context.Context, host, docs string) error {
	for _, d := range []string{"man", "bash", "zsh"} {
		if err := os.MkdirAll(filepath.Join(docs, d), 0o755); err != nil {
			return err
		}
	}
	for _, p := range programs {
		cmd := exec.CommandContext(ctx, filepath.Join(host, "bin", p), "generate",
			"--man", filepath.Join(docs, "man"),
			"--bash-completion", filepath.Join(docs, "bash", p),
			"--zsh-completion", filepath.Join(docs, "zsh", "_"+p))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s generate: %w\n%s", p, err, out)
		}
		page := filepath.Join(docs, "man", p+".1")
		if err := gzipFile(page, page+".gz"); err != nil {
			return fmt.Errorf("man page of %s: %w", p, err)
		}
	}
	return nil
}

// gzipFile compresses src into dst as man-db expects, without a name or
// time in the header, so the same page gives the same bytes.
func gzipFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}

// writePackage writes one package with nFPM from nfpm.yaml and returns its
// path in out, named as the format's convention has it.
func writePackage(root, out, format, arch, version, bin, docs string) (string, error) {
	env := map[string]string{"ROOT": root, "BIN": bin, "DOCS": docs, "ARCH": arch, "VERSION": version}
	// The whole file is expanded (nFPM expands only some fields by itself);
	// a name it does not know is an error, not an empty string.
	yaml, err := os.ReadFile(filepath.Join(root, "packaging", "nfpm.yaml"))
	if err != nil {
		return "", err
	}
	var unknown []string
	mapping := func(k string) string {
		v, ok := env[k]
		if !ok {
			unknown = append(unknown, "$"+k)
		}
		return v
	}
	expanded := os.Expand(string(yaml), mapping)
	if len(unknown) > 0 {
		return "", fmt.Errorf("packaging/nfpm.yaml: unknown variables %v: known are ROOT, BIN, DOCS, ARCH, VERSION", unknown)
	}
	config, err := nfpm.ParseWithEnvMapping(strings.NewReader(expanded), mapping)
	if err != nil {
		return "", fmt.Errorf("packaging/nfpm.yaml: %w", err)
	}
	info, err := config.Get(format)
	if err != nil {
		return "", fmt.Errorf("packaging/nfpm.yaml for %s: %w", format, err)
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("packaging/nfpm.yaml for %s: %w", format, err)
	}
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	target := filepath.Join(out, pkg.ConventionalFileName(info))
	f, err := os.CreateTemp(out, ".tmp-"+filepath.Base(target)+"-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(f.Name()) }() // gone after the rename, unless something failed
	info.Target = target
	if err := pkg.Package(info, f); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("%s package: %w", format, err)
	}
	if err := syncClose(f); err != nil {
		return "", err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), target); err != nil {
		return "", err
	}
	return target, nil
}

func syncClose(f *os.File) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// errUsage marks a usage error (exit code 2).
var errUsage = errors.New("usage")
