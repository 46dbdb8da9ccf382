package redisx

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

func TestFlush(t *testing.T) {
	srv := testenv.Redis(t)
	ctx := context.Background()
	put := func() {
		for db := 0; db < 3; db++ {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: db})
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
		}
	}
	size := func(db int) int64 {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: db})
		defer c.Close()
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		name string
		dbs  []int
		want []int64 // keys left in db 0, 1, 2
	}{
		{"chosen databases", []int{0, 2}, []int64{0, 1, 0}},
		{"all", nil, []int64{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put()
			if _, err := Flush(ctx, Options{Addr: srv.Addr, DBs: tt.dbs}); err != nil {
				t.Fatal(err)
			}
			for db, w := range tt.want {
				if got := size(db); got != w {
					t.Fatalf("db %d has %d keys, want %d", db, got, w)
				}
			}
		})
	}
	if _, err := Flush(ctx, Options{Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("flushing an unreachable Redis succeeded")
	}
}
