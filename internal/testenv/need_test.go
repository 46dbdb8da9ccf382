package testenv

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how a helper ended the test instead of ending it.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.fatal = fmt.Sprintf(format, a...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, a ...any) {
	f.skip = fmt.Sprintf(format, a...)
	runtime.Goexit()
}

func TestMissingBinaryFailsUnderCI(t *testing.T) {
	_, err := lookBin("redis-server", "redis-server-that-does-not-exist")
	if err == nil {
		t.Fatal("lookBin found a binary that does not exist")
	}
	for _, tc := range []struct {
		name, ci string
		fails    bool
	}{
		{"CI=true fails", "true", true},
		{"outside CI skips", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			f := &fakeTB{TB: t}
			done := make(chan struct{})
			go func() { defer close(done); need(f, "redis", err) }()
			<-done
			msg := f.skip
			if tc.fails {
				msg = f.fatal
			}
			if msg == "" {
				t.Fatalf("fatal %q, skip %q; want fails=%v", f.fatal, f.skip, tc.fails)
			}
			for _, want := range []string{"redis-server-that-does-not-exist", "apt-get install redis-server"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %q", msg, want)
				}
			}
		})
	}
}
