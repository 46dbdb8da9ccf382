package filetree

import (
	"os"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestMain is shared by every test file of the package (capture and apply).
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
