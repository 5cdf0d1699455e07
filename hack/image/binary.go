package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildBinary cross-compiles pkg for one "os/arch" into dir and returns
// the file. Static (no cgo), no local paths or VCS stamp in it, and the
// baseline instruction set pinned, so the bytes depend only on the
// source and the Go version (the revision is in the image's labels).
func buildBinary(ctx context.Context, pkg, platform, dir string) (string, error) {
	goos, goarch, ok := strings.Cut(platform, "/")
	if !ok {
		return "", fmt.Errorf("platform %q: want OS/ARCH", platform)
	}
	out := filepath.Join(dir, goos+"-"+goarch, "integration-operator")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s for %s: %w", pkg, platform, err)
	}
	return out, nil
}
