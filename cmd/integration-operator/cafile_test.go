package main

import (
	"context"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// A CA bundle that cannot be read stops the dispatcher at start-up with an
// error naming the flag, before anything is contacted.
func TestDispatcherRefusesABadDestinationCAFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-pem.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.crt"), notPEM} {
		root := newRootCommand()
		root.SetArgs([]string{"dispatcher", "--database-url", "postgres://127.0.0.1:1/x", "--kafka-brokers", "127.0.0.1:1",
			"--destination-ca-file", path})
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "--destination-ca-file") {
			t.Errorf("%s: %v, want an error naming --destination-ca-file", filepath.Base(path), err)
		}
	}
}

// The bundle's CAs are trusted besides the system's, not instead.
func TestDestinationRootsAddToTheSystemsCAs(t *testing.T) {
	ca := testbed.NewCA(t)
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	roots, err := destinationRoots(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := x509.SystemCertPool()
	if err != nil {
		t.Fatal(err)
	}
	want.AppendCertsFromPEM(ca.PEM)
	if !roots.Equal(want) {
		t.Error("the roots are not the system's CAs plus the bundle's")
	}
	if _, err := ca.Issue(t, "broker.internal").Leaf.Verify(x509.VerifyOptions{DNSName: "broker.internal", Roots: roots}); err != nil {
		t.Errorf("a certificate the bundle's CA signed does not verify: %v", err)
	}
	if roots, err := destinationRoots(""); roots != nil || err != nil {
		t.Errorf("no file: %v, %v; want the system's CAs (nil)", roots, err)
	}
}
