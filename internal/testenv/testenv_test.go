package testenv_test

import (
	"os"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
