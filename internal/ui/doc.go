// Package ui turns the progress that logic packages report into output for a
// person: progress bars (schollz/progressbar) when stderr is a terminal,
// periodic log/slog lines when it is not (cron, systemd), nothing at all with
// Nop.
//
// Logic packages never import ui. Each declares the small interface it
// reports through, with exactly this method set:
//
//	type Progress interface {
//		Begin(what string, total int64, unit string) // total <= 0: unknown
//		Add(n int64)
//		End()
//	}
//
// and defaults to a do-nothing value, so any Reporter from this package can
// be passed to any of them. unit is "bytes" (shown as B/KiB/MiB) or a plural
// noun for counts ("files", "shards"). One task is shown at a time: Begin
// ends the previous task. Add may be called from several goroutines.
package ui
