package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	files, err := os.ReadDir(filepath.Join("..", "..", "internal", "store", "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	// By the files' numbers: a number may be left free for another branch.
	var versions []string
	for _, f := range files {
		n, err := strconv.Atoi(strings.SplitN(f.Name(), "_", 2)[0])
		if err != nil {
			t.Fatalf("migration %s: %v", f.Name(), err)
		}
		versions = append(versions, strconv.Itoa(n))
	}
	want := fmt.Sprintf("applied %d migration(s) [%s]", len(files), strings.Join(versions, " "))
	out, err := run("migrate", "--database-url", bed.DatabaseURL)
	if err != nil || !strings.Contains(out, want) {
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
