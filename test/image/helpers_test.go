// Package image_test checks the image make image builds (an OCI archive of
// linux/amd64 and linux/arm64, non-root, with CA certificates, the same
// digest for the same commit, pushable) and that the chart and config/ run
// that image, by name and tag, hardened.
package image_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// The image's user, in hack/image's /etc/passwd and the manifests.
const (
	nonroot    = 65532
	entrypoint = "/usr/local/bin/integration-operator"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// makeVar reads a "NAME ?= value" default of the Makefile, where the
// image's name and tag are set.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` \?= *(\S+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("Makefile sets no %s", name)
	}
	return string(m[1])
}

// run runs a command in the repository root and returns its standard
// output, failing the test with everything it printed.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(t)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// file is one entry of a tar stream.
type file struct {
	hdr  *tar.Header
	data []byte
}

// readTar reads a whole tar stream into its entries by cleaned name.
func readTar(t *testing.T, r io.Reader) map[string]file {
	t.Helper()
	files := map[string]file{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")] = file{hdr: hdr, data: data}
	}
}
