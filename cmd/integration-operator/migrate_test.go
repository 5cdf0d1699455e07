package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

func TestMigrateCommand(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	run := func(args ...string) (string, error) {
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := run("migrate", "--database-url", bed.DatabaseURL)
	if err != nil || !strings.Contains(out, "applied 5 migration(s) [1 2 3 4 5]") {
		t.Fatalf("first run: %q, %v", out, err)
	}
	out, err = run("migrate", "--database-url", bed.DatabaseURL)
	if err != nil || !strings.Contains(out, "applied 0 migration(s)") {
		t.Fatalf("second run: %q, %v", out, err)
	}
	t.Setenv("DATABASE_URL", "")
	if _, err := run("migrate"); err == nil || !strings.Contains(err.Error(), "--database-url") {
		t.Fatalf("without a url: %v", err)
	}
}
