package mysqlx

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestRowCounter(t *testing.T) {
	dump := "-- MariaDB dump\n" +
		"USE `app`;\n" +
		"INSERT INTO `users` VALUES (1,'a (b)'),(2,'it\\'s ),( here'),(3,\"x\\\\\");\n" +
		"INSERT INTO `we``ird` VALUES (1,0x28),(2,NULL);\n" +
		"USE `other`;\n" +
		"INSERT INTO `maria` VALUES\n(1,'a;b'),\n(2,')');\n" +
		"INSERT INTO `users` VALUES (7,'\\n(');\n" +
		"-- Dump completed on 2026-01-01\n"
	tests := []struct {
		name  string
		chunk int
	}{{"whole", len(dump)}, {"byte by byte", 1}, {"7 bytes", 7}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newRowCounter()
			for s := dump; len(s) > 0; {
				n := min(tt.chunk, len(s))
				write(t, rc, s[:n])
				s = s[n:]
			}
			want := map[TableKey]int64{{"app", "users"}: 3, {"app", "we`ird"}: 2, {"other", "users"}: 1, {"other", "maria"}: 2}
			for k, v := range want {
				if rc.counts[k] != v {
					t.Errorf("%v = %d, want %d (all: %v)", k, rc.counts[k], v, rc.counts)
				}
			}
			if len(rc.counts) != len(want) || !rc.complete {
				t.Errorf("counts %v complete %v", rc.counts, rc.complete)
			}
		})
	}
}

// FuzzRowCounter checks two properties of the counter: a dump counts the
// same however it is cut into writes (it streams), and rows holding any
// string, escaped as mysqldump escapes it, count as written.
func FuzzRowCounter(f *testing.F) {
	f.Add("USE `a`;\nINSERT INTO `t` VALUES (1,'x');\n", 5, "it's ),( (here", "t`1", uint8(3))
	f.Add("INSERT INTO `t` VALUES\n(1,'a;b'),\n(2,')');\n-- Dump completed\n", 1, "\\", "x", uint8(0))
	f.Fuzz(func(t *testing.T, dump string, cut int, value, table string, rows uint8) {
		// Any input, cut anywhere: the same counts.
		whole := newRowCounter()
		write(t, whole, dump)
		if len(dump) > 0 {
			cut = (cut%len(dump) + len(dump)) % len(dump)
		} else {
			cut = 0
		}
		parts := newRowCounter()
		write(t, parts, dump[:cut])
		write(t, parts, dump[cut:])
		if !maps.Equal(whole.counts, parts.counts) || whole.complete != parts.complete {
			t.Fatalf("cut at %d: %v %v, whole: %v %v", cut, parts.counts, parts.complete, whole.counts, whole.complete)
		}

		// Rows written as mysqldump writes them read back as written.
		if strings.ContainsAny(table, "\n") || len(table) > 100 {
			return // a header line mysqldump does not write
		}
		n := int(rows % 50)
		var b strings.Builder
		b.WriteString("USE `db`;\n")
		if n > 0 {
			b.WriteString("INSERT INTO `" + strings.ReplaceAll(table, "`", "``") + "` VALUES ")
			for i := range n {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, "(%d,'%s',0x%x)", i, dumpEscape(value), value)
			}
			b.WriteString(";\n")
		}
		b.WriteString("-- Dump completed on 2026-01-01\n")
		rc := newRowCounter()
		write(t, rc, b.String())
		if got := rc.counts[TableKey{"db", table}]; got != int64(n) || !rc.complete {
			t.Fatalf("%d rows of %q in %q: counted %d (all %v), complete %v", n, value, table, got, rc.counts, rc.complete)
		}
	})
}

// dumpEscape escapes a string value as mysqldump does inside '...'.
func dumpEscape(s string) string {
	return strings.NewReplacer("\\", "\\\\", "'", "\\'", "\"", "\\\"", "\n", "\\n", "\r", "\\r", "\x00", "\\0", "\x1a", "\\Z").Replace(s)
}

// write feeds s to the counter, which takes every byte.
func write(t *testing.T, rc *rowCounter, s string) {
	t.Helper()
	if n, err := rc.Write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(s))
	}
}
