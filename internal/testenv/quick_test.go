package testenv_test

import (
	"context"
	"testing"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

func TestQuickServices(t *testing.T) {
	m := testenv.MariaDB(t)
	db := m.DB(t)
	var v string
	if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Log(v)
	r := testenv.Redis(t)
	if err := r.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	s := testenv.SSHD(t)
	c, err := sshx.Dial(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Run(context.Background(), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}
