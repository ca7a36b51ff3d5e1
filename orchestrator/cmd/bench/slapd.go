package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

// serveSlapd runs the tests' LDAP fixture (testenv) with the course
// students added, on the host (the bench image has no slapd), until ctx
// ends. It writes "HOST PORT" to portFile once slapd listens.
func serveSlapd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("slapd", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1", "address slapd listens on")
	users := fs.Int("users", 200, "students course001… to add")
	admin := fs.String("admin", "courseadmin", "one more user, the admin of the bench configuration")
	password := fs.String("password", "", "every added user's password (required)")
	portFile := fs.String("port-file", "", "write HOST PORT here once listening (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *password == "" || *portFile == "" {
		return fmt.Errorf("slapd: --password and --port-file are required")
	}
	dir, err := os.MkdirTemp("", "swarmhub-course-ldif-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	extra := filepath.Join(dir, "students.ldif")
	if err := os.WriteFile(extra, []byte(studentsLDIF(append(names("course", 1, *users), *admin), *password)), 0o600); err != nil {
		return err
	}
	s, err := testenv.LaunchSlapd(testenv.SlapdOptions{ListenHost: *listen, ExtraLDIF: extra})
	if err != nil {
		return err
	}
	defer s.Stop()
	if err := os.WriteFile(*portFile, []byte(fmt.Sprintf("%s %d\n", s.Host, s.Port)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "slapd on %s with %d students (bind DN uid=NAME,ou=people,%s)\n", s.URL, *users, s.BaseDN)
	<-ctx.Done()
	return nil
}

// studentsLDIF is one inetOrgPerson under ou=people per user, all with the
// same password (plain userPassword: a test directory).
func studentsLDIF(users []string, password string) string {
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "dn: uid=%s,ou=people,dc=example,dc=edu\nobjectClass: inetOrgPerson\nuid: %s\ncn: Student %s\nsn: %s\nuserPassword: %s\n\n", u, u, u, u, password)
	}
	return b.String()
}
