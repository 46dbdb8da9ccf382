package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// A build tool run by make: the standard library's flag package is enough
// (the programs' urfave/cli set-up is about their users' settings).
func main() {
	fs := flag.NewFlagSet("packaging", flag.ContinueOnError)
	var o Options
	var arches string
	fs.StringVar(&o.Root, "root", ".", "the repository")
	fs.StringVar(&o.Out, "out", "dist", "where the packages are written")
	fs.StringVar(&o.Version, "version", "", "package version, e.g. 0.1.0 or 0.1.0~dev.42 (make package sets it)")
	fs.StringVar(&o.Commit, "commit", "", "the commit built, shown by --version (make package sets it)")
	fs.StringVar(&arches, "arch", "amd64,arm64", "architectures, comma separated: amd64, arm64")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	o.Arches = strings.Split(arches, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	built, err := Build(ctx, o)
	for _, p := range built {
		fmt.Println(p)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
