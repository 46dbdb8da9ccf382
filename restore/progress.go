package main

import (
	"log/slog"

	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/ui"
)

// The restorer's progress adapters: the events es and filetree report,
// drawn by the ui.Reporter of the command (manifest.Verify reports to it
// directly).

// esProgress logs the steps of an Elasticsearch restore and counts its
// restored primary shards.
type esProgress struct {
	log   *slog.Logger
	rep   ui.Reporter
	total int
	last  int
}

func (e *esProgress) RestoreStep(msg string) { e.log.Info("elasticsearch: " + msg) }

func (e *esProgress) RestoreShards(started, total int) {
	if total != e.total {
		e.rep.Begin("elasticsearch: restored primary shards", int64(total), "shards")
		e.total, e.last = total, 0
	}
	e.rep.Add(int64(started - e.last))
	e.last = started
}

// treeProgress counts the changes filetree.Apply makes.
type treeProgress struct{ rep ui.Reporter }

func (t treeProgress) Applied(filetree.Change) { t.rep.Add(1) }
