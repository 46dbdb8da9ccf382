package remote

import (
	"fmt"
	"os"
)

// ServeIfAsked plays `transfer serve DIR` when this process was started
// as "PROGRAM serve DIR", then exits; otherwise it returns at once. Test
// binaries call it first in TestMain, so that a test can start the binary
// itself over SSH as the far end of a push or of restore's files-via-ssh.
func ServeIfAsked() {
	if len(os.Args) != 3 || os.Args[1] != "serve" {
		return
	}
	if err := Serve(os.Args[2], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
