package filetree

import (
	"os"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestMain is shared by every test file of the package (capture and
// apply). It also plays `transfer serve` when the helper target's tests
// start this test binary over SSH as "filetree.test serve ROOT".
func TestMain(m *testing.M) {
	remote.ServeIfAsked()
	os.Exit(testenv.Main(m))
}
