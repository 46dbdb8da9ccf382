package mysqlx

import (
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
				rc.Write([]byte(s[:n]))
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

func FuzzRowCounter(f *testing.F) {
	f.Add("USE `a`;\nINSERT INTO `t` VALUES (1,'x');\n")
	f.Fuzz(func(t *testing.T, s string) {
		rc := newRowCounter()
		rc.Write([]byte(s))
		_ = strings.Count(s, "(")
	})
}
