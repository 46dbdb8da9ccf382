package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/restart"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestFailedStage: a stage that fails stops the restore with exit 1, a
// report of what was and was not restored, a ledger entry and an alert; the
// next run restores the same set again from the start.
func TestFailedStage(t *testing.T) {
	f := newFixture(t)
	set := f.publishSmall()
	f.transfer()

	alerts := make(chan alert.Alert, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert.Alert
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &a); err != nil {
			t.Errorf("webhook body %s: %v", b, err)
		}
		alerts <- a
	}))
	defer hook.Close()

	e := f.env()
	e.cfg.RestartCommand = "echo restart script broken >&2; exit 3"
	e.cfg.Alert = alert.Options{WebhookURL: hook.URL}
	var out bytes.Buffer
	err := runRun(context.Background(), runOptions{}, e, &out)
	t.Logf("failed run:\n%s", out.String())
	if exitCode(err) != 1 || !errors.Is(err, ErrStageFailed) || !errors.Is(err, restart.ErrFailed) {
		t.Fatalf("exit %d, err %v; want 1 with the restart stage failed", exitCode(err), err)
	}
	for _, want := range []string{"restored before it: elasticsearch, mysql, files, redis", "not restored: restart, postcheck", "run restore again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	for _, want := range []string{"restart       failed", "postcheck     skipped", "exited 3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report does not say %q", want)
		}
	}
	select {
	case a := <-alerts:
		if a.ExitCode != 1 || !strings.Contains(a.Summary, set) || !strings.Contains(a.Detail, "restart") {
			t.Fatalf("alert %+v does not name the set and the stage", a)
		}
	default:
		t.Fatal("no alert was sent")
	}
	l, err := ledger.Open(f.state)
	testkit.Must(t, err)
	if fail, err := l.LastFailure(); err != nil || fail.Set != set || fail.Stage("restart").Outcome != ledger.Failed {
		t.Fatalf("ledger: %+v %v", fail, err)
	}

	// fixed: the same set restores from the start
	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatalf("second run: %v", err)
	}
	f.sameData("after the retry")
	f.checkLive(set)
}
