// Package ui turns the progress that logic packages report into output for a
// person: progress bars (schollz/progressbar) when stderr is a terminal,
// periodic log/slog lines when it is not (cron, systemd), nothing at all with
// Nop.
//
// Logic packages never import ui. They report through the one progress
// interface, manifest.Progress (Reporter is that interface):
//
//	type Progress interface {
//		Begin(what string, total int64, unit string) // total <= 0: unknown
//		Add(n int64)
//		End()
//	}
//
// and default to manifest.NoProgress (Nop here), so any Reporter from this
// package can be passed to any of them. unit is "bytes" (shown as B/KiB/MiB)
// or a plural noun for counts ("files", "shards"). One task is shown at a
// time: Begin ends the previous task. Add may be called from several
// goroutines.
package ui
