package main

import (
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/ui"
)

// The restorer's progress adapter: the changes filetree reports, drawn by
// the ui.Reporter of the command (manifest.Verify and es report to it
// directly).

// treeProgress counts the changes filetree.Apply makes.
type treeProgress struct{ rep ui.Reporter }

func (t treeProgress) Applied(filetree.Change) { t.rep.Add(1) }
