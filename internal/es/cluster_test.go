package es

import (
	"errors"
	"testing"
)

func TestCanRestore(t *testing.T) {
	tests := []struct {
		snapshot, cluster string
		ok                bool
	}{
		{"7.17.29", "7.17.29", true},
		{"7.10.2", "7.17.29", true},
		{"7.17.29", "8.11.0", true},
		{"7.17.29", "7.10.2", false},
		{"6.8.23", "8.11.0", false},
		{"8.0.0-rc1", "8.0.0", true},
	}
	for _, tt := range tests {
		err := CanRestore(tt.snapshot, tt.cluster)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrIncompatible)) {
			t.Errorf("CanRestore(%s, %s) = %v, want ok=%v", tt.snapshot, tt.cluster, err, tt.ok)
		}
	}
	if err := CanRestore("seven", "7.17.29"); err == nil || errors.Is(err, ErrIncompatible) {
		t.Errorf("a malformed version: %v, want a parse error", err)
	}
}
