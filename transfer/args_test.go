package main

import (
	"strings"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"flags after the argument", "transfer wait DIR --timeout 10m", "transfer wait --timeout 10m DIR"},
		{"bool flag takes no value", "transfer push SRC --checksum DST", "transfer push --checksum SRC DST"},
		{"flag=value", "transfer verify DIR --set=X", "transfer verify --set=X DIR"},
		{"already first", "transfer verify --set X DIR", "transfer verify --set X DIR"},
		{"after --", "transfer verify -- --odd-dir", "transfer verify -- --odd-dir"},
		{"unknown command untouched", "transfer nope a --b", "transfer nope a --b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(flagsFirst(newApp(), strings.Fields(tc.in)), " ")
			if got != tc.want {
				t.Fatalf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
