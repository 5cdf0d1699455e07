package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// source is what the image is built from, recorded in its labels. Its time
// stamps every file, the config and the history, so the digest depends on
// the commit and not on when it was built.
type source struct {
	revision  string
	time      time.Time
	goVersion string
}

// describeSource reads the commit and its time from git; SOURCE_DATE_EPOCH
// (the reproducible-builds convention) overrides the time.
func describeSource(ctx context.Context) (source, error) {
	var s source
	rev, err := output(ctx, "git", "rev-parse", "HEAD")
	if err != nil {
		return s, err
	}
	s.revision = rev
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		if epoch, err = output(ctx, "git", "log", "-1", "--format=%ct", "HEAD"); err != nil {
			return s, err
		}
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return s, fmt.Errorf("source date epoch %q: %w", epoch, err)
	}
	s.time = time.Unix(sec, 0).UTC()
	if s.goVersion, err = output(ctx, "go", "env", "GOVERSION"); err != nil {
		return s, err
	}
	if changes, _ := output(ctx, "git", "status", "--porcelain", "--untracked-files=no"); changes != "" {
		log.Printf("the working tree differs from %.12s: the binary (and digest) is not that commit's", rev)
	}
	return s, nil
}

// output runs a command and returns its trimmed standard output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
