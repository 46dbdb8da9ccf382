# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
MODULES := manifest internal backup transfer restore
PROGRAMS := backup transfer restore
# The package version (VERSION file; a build from a commit other than the
# tag vX.Y.Z is X.Y.Z~dev.N, N commits in: it sorts before the release and
# after every earlier build) and the commit; --version prints both.
VERSION ?= $(shell v=$$(cat VERSION); if git describe --tags --exact-match --match "v$$v" >/dev/null 2>&1; then echo $$v; else echo "$$v~dev.$$(git rev-list --count HEAD 2>/dev/null || echo 0)"; fi)
COMMIT ?= $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown); git diff --quiet HEAD 2>/dev/null || c=$$c+dirty; echo $$c)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Architectures of make package.
PACKAGE_ARCH ?= amd64,arm64
WORLD ?= $(CURDIR)/.world
# -count=1: the tests talk to real servers, so a cached result proves nothing.
# -p 2: two test packages at a time (2 cores); a package that uses the shared
# two-site world runs two Elasticsearch nodes (about 0.8 GB each).
GOTEST_FLAGS ?= -count=1 -p 2 -timeout 40m
# Every module's packages, as go.work patterns from the repository root.
PKGS := $(patsubst %,./%/...,$(MODULES))
# make lint also covers the packaging module (its test is make package-test).
LINT_MODULES := $(MODULES) packaging
LINT_PKGS := $(PKGS) ./packaging/...
STATICCHECK_VERSION ?= v0.8.2
ERRCHECK_VERSION ?= v1.9.0

.PHONY: all setup build test lint errcheck env-up env-down demo drill bench bench-es bench-scale bench-wan clean package package-test

all: build

setup:
	@./scripts/setup.sh

build:
	@mkdir -p bin
	@for p in $(PROGRAMS); do (cd $$p && go build -trimpath -ldflags "$(LDFLAGS)" -o ../bin/$$p .) || exit 1; done

# One go test over all modules, so packages of every module share the -p slots.
test: setup build
	go test $(GOTEST_FLAGS) $(PKGS)

lint:
	@out=$$(gofmt -l $(LINT_MODULES)); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@for m in $(LINT_MODULES); do (cd $$m && go mod tidy -diff >/dev/null) || { echo "lint: $$m/go.mod is not tidy: run (cd $$m && go mod tidy)"; exit 1; }; done
	go vet $(LINT_PKGS)
	@sc=$$(go env GOPATH)/bin/staticcheck; \
	if [ ! -x "$$sc" ] && ! go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); then \
		echo "lint: staticcheck could not be installed from the Go module proxy"; \
		if [ "$$CI" = true ]; then exit 1; fi; echo "lint: staticcheck skipped (under CI=true this fails)"; exit 0; fi; \
	echo "$$sc $(LINT_PKGS)"; "$$sc" $(LINT_PKGS)
	@$(MAKE) --no-print-directory errcheck

# errcheck: every returned error is used, but those of
# scripts/errcheck-exclude.txt (prints to the user, bufio's sticky errors)
# and a Close that is the whole statement of a defer or a t.Cleanup. Such a
# Close is of something only read (a file whose data was read, a response
# body, a connection, a database handle, a log file only a child process
# writes), which has nothing left to lose, or the safety net of a written
# file whose Close is also checked on the way out: a written file's Close
# is always checked where its data is final. Any other ignored error is written
# `_ = f()` where the choice is deliberate (cleanup after an earlier error).
errcheck:
	@ec=$$(go env GOPATH)/bin/errcheck; \
	if [ ! -x "$$ec" ] && ! go install github.com/kisielk/errcheck@$(ERRCHECK_VERSION); then \
		echo "lint: errcheck could not be installed from the Go module proxy"; \
		if [ "$$CI" = true ]; then exit 1; fi; echo "lint: errcheck skipped (under CI=true this fails)"; exit 0; fi; \
	echo "$$ec -exclude scripts/errcheck-exclude.txt $(LINT_PKGS)"; \
	out=$$("$$ec" -exclude scripts/errcheck-exclude.txt $(LINT_PKGS)); rc=$$?; \
	if [ $$rc -gt 1 ]; then "$$ec" -exclude scripts/errcheck-exclude.txt $(LINT_PKGS) >/dev/null; \
		echo "lint: errcheck could not check the packages (exit $$rc, above)"; exit 1; fi; \
	out=$$(printf '%s\n' "$$out" | grep -Ev $$'\t(defer [A-Za-z0-9_.]+\\.Close\\(\\)|t\\.Cleanup\\(func\\(\\) \\{ [A-Za-z0-9_.]+\\.Close\\(\\) \\}\\))( //.*)?$$'); \
	if [ -n "$$out" ]; then echo "$$out"; echo "lint: errcheck: errors not checked (above)"; exit 1; fi

# PROFILE=cluster: a 3-node prod and a 1-node bcp; PROFILE=cluster3: 3 nodes on both.
PROFILE ?= single
env-up: setup
	@cd internal && go run ./cmd/testworld up -dir $(WORLD) -profile $(PROFILE)

env-down:
	@cd internal && go run ./cmd/testworld down -dir $(WORLD)

# The main job on a local demo pair of clusters: builds the programs, starts
# the two-site world, backup -> transfer push over SFTP -> restore, compares
# both sites and stops everything it started.
demo: setup
	@cd internal && go run ./cmd/demo

# Failover and failback on the local two-site world: runs every command of
# doc/runbook.md as written, on the site it names, and proves both sites
# equal after each step (internal/cmd/demo/drill.go).
drill: setup
	@cd internal && go run ./cmd/demo -drill $(CURDIR)/doc/runbook.md

# Elasticsearch at scale (bench/es.md): 10 indices, 1 GB of documents on
# prod (BCP_BENCH_SCALE=0.1: 100 MB); first cycle, one index changed, nothing
# changed; each restore beside restore --full of the same set, in one run.
bench-es: setup
	@mkdir -p bench/out
	@set -o pipefail; cd internal && BCP_TESTENV_ES_HEAP=$${BCP_TESTENV_ES_HEAP:-1g} go run ./cmd/demo \
	  -es-bench-mb $$(awk "BEGIN{print int(1024*$${BCP_BENCH_SCALE:-1})}") -docs 2000 -files 100 2>&1 | \
	  tee ../bench/out/es-$$(date -u +%Y%m%dT%H%M%SZ).txt

# Side by side with rsync, sha256sum and mysqldump | gzip in one run; ratios
# in each line. BCP_BENCH_SCALE=0.1 for a quick look. Raw output in bench/out.
bench: setup build
	@mkdir -p bench/out
	@set -o pipefail; { \
	  echo "# manifest: Verify vs sha256sum"; \
	  (cd manifest && go test -run '^$$' -bench 'BenchmarkVerify|SHA256OneCore' -benchtime 1x -timeout 60m .); \
	  echo "# backup: files stage vs rsync -a, MySQL stage vs mysqldump | gzip"; \
	  (cd backup && go test -run '^$$' -bench . -benchtime 1x -timeout 60m .); \
	} 2>&1 | tee bench/out/bench-$$(date -u +%Y%m%dT%H%M%SZ).txt
	@./bench/transfer.sh

# Between two data centres: push (helper and SFTP) beside rsync -a over the
# same toxiproxy link at 50 ms / 100 Mbit/s and 10 ms / 1 Gbit/s
# (bench/wan.md). BCP_BENCH_SCALE=0.05 for a quick look.
bench-wan: setup
	@./bench/wan.sh

# A million-file storage, files stage of each program beside rsync -a, with
# peak RSS (bench/scale.md). BCP_SCALE_FILES=100000 for a quick look.
bench-scale: setup
	@./bench/scale.sh

# .deb and .rpm into dist/ (packaging/: nFPM as a library; layout in
# packaging/nfpm.yaml).
package:
	go run ./packaging -version '$(VERSION)' -commit '$(COMMIT)' -arch $(PACKAGE_ARCH) -out dist

# Builds two versions of the packages, installs, upgrades, removes and
# purges them on this machine seen through an overlay (as root; / is never
# changed), and compares the .rpm's layout with the .deb's. Run by .ci/run.
package-test: setup
	go test -count=1 -timeout 15m ./packaging/

clean:
	rm -rf bin dist
