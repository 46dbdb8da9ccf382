package postcheck

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

func TestRun(t *testing.T) {
	db := testenv.MariaDB(t)
	var calls atomic.Int64
	// comes up on the third request, like a service after a restart
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer slow.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer down.Close()
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
		says    string
	}{
		{"all answer", Options{URLs: []string{slow.URL}, MySQLDSN: db.DSN(""), Timeout: time.Minute, Interval: 10 * time.Millisecond}, false, ""},
		{"a URL stays down", Options{URLs: []string{down.URL}, MySQLDSN: db.DSN(""), Timeout: 300 * time.Millisecond, Interval: 10 * time.Millisecond}, true, "500"},
		{"mysql refuses", Options{MySQLDSN: "root:wrong@tcp(" + db.Addr() + ")/", Timeout: 300 * time.Millisecond, Interval: 50 * time.Millisecond}, true, "mysql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(context.Background(), tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v (results %+v)", err, tt.wantErr, res)
			}
			if err != nil && (!errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), tt.says)) {
				t.Fatalf("err = %v, want ErrFailed naming %q", err, tt.says)
			}
		})
	}
}
