package filetree

import (
	"fmt"
	"os"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestMain is shared by every test file of the package (capture and
// apply). It also plays `transfer serve` when the helper target's tests
// start this test binary over SSH as "filetree.test serve ROOT".
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "serve" {
		if err := remote.Serve(os.Args[2], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(testenv.Main(m))
}
