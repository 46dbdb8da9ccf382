package main

import (
	"testing"

	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestEveryCommandBuiltAlike: every command is built with prog.Command.
func TestEveryCommandBuiltAlike(t *testing.T) {
	testkit.CommandsBuiltAlike(t, newApp(), "generate")
}
