package site

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

func rec(epoch uint64, active string) manifest.ChannelEpoch {
	ch := manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}
	return manifest.ChannelEpoch{Record: &manifest.EpochRecord{Channel: ch, Epoch: epoch, Active: active, Created: time.Now(), Host: "h"}}
}

func TestProducerEpoch(t *testing.T) {
	tests := []struct {
		name  string
		site  string
		chans []manifest.ChannelEpoch
		want  uint64
		err   error
	}{
		{"no record", "prod", []manifest.ChannelEpoch{{}, {}}, 1, nil},
		{"own promotion", "bcp", []manifest.ChannelEpoch{rec(2, "bcp"), {}}, 2, nil},
		{"superseded via the reverse channel", "prod", []manifest.ChannelEpoch{rec(1, "prod"), rec(2, "bcp")}, 0, ErrSuperseded},
		{"promoted again after failback", "prod", []manifest.ChannelEpoch{rec(3, "prod"), rec(2, "bcp")}, 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProducerEpoch(tt.site, tt.chans...)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("ProducerEpoch = %d, %v; want %d, %v", got, err, tt.want, tt.err)
			}
			if err != nil && (!errors.Is(err, manifest.ErrStale) || !strings.Contains(err.Error(), "bcp active since")) {
				t.Fatalf("error %v: want a kind of ErrStale naming the record", err)
			}
		})
	}
}

func TestNextEpoch(t *testing.T) {
	if n := NextEpoch(0, manifest.ChannelEpoch{}); n != 2 {
		t.Fatalf("first promotion: %d, want 2 (sets made before any are epoch 1)", n)
	}
	if n := NextEpoch(5, rec(3, "prod")); n != 6 {
		t.Fatalf("seen 5, record 3: %d, want 6", n)
	}
	if n := NextEpoch(2, rec(3, "prod"), rec(2, "bcp")); n != 4 {
		t.Fatalf("records 3 and 2: %d, want 4", n)
	}
}

func TestSeenEpoch(t *testing.T) {
	p := filepath.Join(t.TempDir(), SeenEpochFile)
	if n, err := ReadSeenEpoch(p); n != 0 || err != nil {
		t.Fatalf("missing file: %d, %v", n, err)
	}
	for _, step := range []struct{ raise, want uint64 }{{3, 3}, {2, 3}, {5, 5}} {
		if err := RaiseSeenEpoch(p, step.raise); err != nil {
			t.Fatal(err)
		}
		if n, err := ReadSeenEpoch(p); n != step.want || err != nil {
			t.Fatalf("after raising to %d: %d, %v; want %d", step.raise, n, err, step.want)
		}
	}
}
