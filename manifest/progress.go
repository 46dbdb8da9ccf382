package manifest

// Progress receives how far a long task has come: Begin starts a task of
// total units ("bytes", "files"; total <= 0 when unknown), Add counts units
// done and End closes the task. It is the one progress interface of the
// project: Verify reports through it, so do internal's capture, snapshot
// and copy, and internal/ui's reporters draw it (ui.Reporter is this
// interface). Calls may come from several goroutines at once.
type Progress interface {
	Begin(what string, total int64, unit string)
	Add(n int64)
	End()
}

// NoProgress reports nothing.
type NoProgress struct{}

func (NoProgress) Begin(string, int64, string) {}
func (NoProgress) Add(int64)                   {}
func (NoProgress) End()                        {}
