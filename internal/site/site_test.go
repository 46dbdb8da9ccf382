package site

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRole(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string
		want    Role
		wantErr error
	}{
		{"active", ptr("active\n"), Active, nil},
		{"standby spaces", ptr("  standby  "), Standby, nil},
		{"missing", nil, "", ErrNoRole},
		{"garbage", ptr("primary"), "", ErrBadRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if tt.content != nil {
				if err := os.WriteFile(p, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Read(p)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Read = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestWriteRequire(t *testing.T) {
	p := filepath.Join(t.TempDir(), "role")
	if err := Write(p, Standby); err != nil {
		t.Fatal(err)
	}
	if err := Require(p, Active, "backup"); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("Require = %v, want ErrWrongRole", err)
	}
	if err := Write(p, Active); err != nil {
		t.Fatal(err)
	}
	if err := Require(p, Active, "backup"); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, "primary"); !errors.Is(err, ErrBadRole) {
		t.Fatalf("Write bad = %v", err)
	}
}

func ptr(s string) *string { return &s }
