package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ledger"
)

// TestRestartUnconfigured: a restore with no restart-command is a
// configuration error (exit 2) before anything changes - never a silent
// skip of stage 10; restart-command = "none" restores and says the restart
// was left out on purpose.
func TestRestartUnconfigured(t *testing.T) {
	f := newFixture(t)
	f.publishSmall()
	f.transfer()
	e := f.env()
	e.cfg.RestartCommand, e.cfg.RestartNodes = "", nil
	_, err := newRestorer(e.cfg, e.log, e.rep).run(context.Background(), request{})
	if !errors.Is(err, cli.ErrUsage) || exitCode(err) != 2 || !strings.Contains(err.Error(), `restart-command = "none"`) {
		t.Fatalf("restore without restart-command: %v (exit %d), want exit 2 saying how to restart nothing on purpose", err, exitCode(err))
	}
	if got := f.indices(f.bcpES); len(got) != 0 {
		t.Fatalf("the refused restore changed Elasticsearch: %v", got)
	}
	if got := f.databases(f.bcpDB); len(got) != 0 {
		t.Fatalf("the refused restore changed MySQL: %v", got)
	}

	e.cfg.RestartCommand = restartNone
	p, err := newRestorer(e.cfg, e.log, e.rep).run(context.Background(), request{})
	if err != nil {
		t.Fatalf("restore with restart-command = none: %v", err)
	}
	var st *ledger.Stage
	for i := range p.Stages {
		if p.Stages[i].Name == stageRestart {
			st = &p.Stages[i]
		}
	}
	if st == nil || st.Outcome != ledger.Skipped || !strings.Contains(st.Detail+st.Error, "none") {
		t.Fatalf("stage restart: %+v, want skipped on purpose (none)", st)
	}
	if _, err := os.Stat(f.restarts); !os.IsNotExist(err) {
		t.Fatalf("something was restarted: %v", err)
	}
}
