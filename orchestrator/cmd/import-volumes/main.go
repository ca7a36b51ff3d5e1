// Command import-volumes moves the current JupyterHub setup's Docker volumes
// into swarmhub's storage root:
//
//	jupyterhub-user-NAME/_data/...  →  ROOT/users/NAME/...
//	exchange/_data/...              →  ROOT/exchange/...
//
// read either from a directory laid out like /var/lib/docker/volumes (--from)
// or from the zip archive the current setup makes of it (--from-zip, paths
// starting with var/lib/docker/volumes/).
//
// It is idempotent (a file whose size, mtime and SHA-256 already match is
// skipped), resumable (each file is written to NAME.swarmhub-import.tmp and
// renamed; ROOT/.import-state.json records finished volumes) and verified
// (every copy is re-read and compared with the source's SHA-256). It exits
// non-zero on any mismatch or error. --dry-run lists what it would do and
// changes nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const (
	userPrefix = "jupyterhub-user-"
	exchange   = "exchange"
	tmpSuffix  = ".swarmhub-import.tmp"
	stateName  = ".import-state.json"
	zipPrefix  = "var/lib/docker/volumes/"
	// Owner of imported files when running as root: the notebook image's
	// jovyan user and users group.
	ownerUID = 1000
	ownerGID = 100
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "import-volumes:", err)
		os.Exit(1)
	}
}

type options struct {
	from, fromZip, to string
	dryRun, mapNames  bool
	verify            bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("import-volumes", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o options
	fl.StringVar(&o.from, "from", "", "directory laid out like /var/lib/docker/volumes")
	fl.StringVar(&o.fromZip, "from-zip", "", "zip archive of /var/lib/docker/volumes (zip -r volumes.zip /var/lib/docker/volumes)")
	fl.StringVar(&o.to, "to", "", "swarmhub storage root (gets users/ and exchange/)")
	fl.BoolVar(&o.dryRun, "dry-run", false, "list what would be done and change nothing")
	fl.BoolVar(&o.mapNames, "map-names", false, "canonicalise user names: lower-case, undo DockerSpawner's escaping (a-2eb → a.b)")
	fl.BoolVar(&o.verify, "verify", false, "re-hash files of volumes a previous run completed instead of trusting size and mtime")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: import-volumes (--from DIR | --from-zip FILE) --to ROOT [--dry-run] [--map-names] [--verify]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if (o.from == "") == (o.fromZip == "") || o.to == "" || fl.NArg() > 0 {
		fl.Usage()
		return errors.New("give exactly one of --from and --from-zip, and --to")
	}

	var src source
	var err error
	if o.from != "" {
		src, err = openDirSource(o.from)
	} else {
		src, err = openZipSource(o.fromZip)
	}
	if err != nil {
		return err
	}
	defer src.Close()

	im := &importer{o: o, out: stdout}
	if err := im.plan(src.Volumes()); err != nil {
		return err
	}
	return im.run(ctx, src)
}
