package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
)

// caBundle is the CA certificates file the image trusts (Go reads
// /etc/ssl/certs/ca-certificates.crt first), with where it came from.
type caBundle struct {
	data   []byte
	origin string
}

// readCABundle reads the build host's bundle, installing Debian's
// ca-certificates package first when it is missing: the image has no
// package manager, so the host's copy is the one it ships.
func readCABundle(ctx context.Context, path string) (caBundle, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err = installCACertificates(ctx); err == nil {
			data, err = os.ReadFile(path)
		}
	}
	if err != nil {
		return caBundle{}, fmt.Errorf("CA bundle: %w", err)
	}
	origin := path + " of the build host"
	if v, err := output(ctx, "dpkg-query", "-W", "-f=${Version}", "ca-certificates"); err == nil && v != "" {
		origin = "Debian ca-certificates " + v
	}
	return caBundle{data: data, origin: origin}, nil
}

func installCACertificates(ctx context.Context) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("missing and no apt-get to install ca-certificates; pass --ca-bundle")
	}
	log.Print("installing ca-certificates")
	var prefix []string
	if os.Geteuid() != 0 {
		prefix = []string{"sudo"}
	}
	for _, args := range [][]string{{"apt-get", "update", "-q"}, {"apt-get", "install", "-y", "-q", "--no-install-recommends", "ca-certificates"}} {
		args = append(prefix, args...)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %w", args, err)
		}
	}
	return nil
}
