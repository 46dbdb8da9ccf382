package testenv

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
)

// StartOptions changes how the Start* functions run a service.
type StartOptions struct {
	// Detached services survive the process that started them (make env-up):
	// a new session, no parent-death signal, stdin from /dev/null. Stop them
	// with StopDir. Otherwise a service dies with the process that started it,
	// even if that process panics or is killed.
	Detached bool
	// Name names the service where it has a name of its own: the
	// Elasticsearch cluster (its node is Name-1). StartWorld uses the site
	// name. Empty means "testenv".
	Name string
	// ExtraArgs are added to the server's command line (MariaDB, Redis):
	// a replica's settings, binary logging.
	ExtraArgs []string
}

// Main runs a package's tests and then stops the services the package
// shares (Elasticsearch, SharedWorld). Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	stopShared()
	return code
}

// shared holds what Main stops: services started once per package.
var shared struct {
	sync.Mutex
	stops []func()
}

func onShutdown(f func()) {
	shared.Lock()
	defer shared.Unlock()
	shared.stops = append(shared.stops, f)
}

func stopShared() {
	shared.Lock()
	stops := shared.stops
	shared.stops = nil
	shared.Unlock()
	var wg sync.WaitGroup
	for i := len(stops) - 1; i >= 0; i-- {
		wg.Add(1)
		go func(f func()) { defer wg.Done(); f() }(stops[i])
	}
	wg.Wait()
}

// InCI reports whether the tests run under CI=true, where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireCI stops a test that cannot run because what is missing: it fails
// under CI=true (nothing may skip in CI) and skips otherwise. howToInstall
// says how to get it.
func RequireCI(t testing.TB, what, howToInstall string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is missing (CI=true, so this fails instead of skipping): %s", what, howToInstall)
	}
	t.Skipf("%s is missing: %s (under CI=true this fails)", what, howToInstall)
}

// need turns a start error into the right test outcome: a missing binary
// goes through RequireCI, anything else fails the test.
func need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var me *missingError
	if errors.As(err, &me) {
		RequireCI(t, me.what, me.how)
	}
	t.Fatalf("testenv: start %s: %v", what, err)
}

// missingError says that a binary or file a service needs is not there.
type missingError struct{ what, how string }

func (e *missingError) Error() string        { return e.what + " " + ErrMissing.Error() + ": " + e.how }
func (e *missingError) Is(target error) bool { return target == ErrMissing }

// tempDir makes a short-named directory for one service (unix socket paths
// are limited to 107 bytes, which t.TempDir names can exceed). It is removed
// when the test ends, unless the test failed: then its logs are kept.
func tempDir(t testing.TB, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", "bcp-"+prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: kept %s for its logs", d)
			return
		}
		_ = os.RemoveAll(d)
	})
	return d
}

func bg() context.Context { return context.Background() }
