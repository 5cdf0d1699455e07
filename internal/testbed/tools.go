package testbed

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// RepoRoot finds the repository root by walking up from the working
// directory to the go.mod of this module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/ss3dev/integration-operator\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root not found above the working directory")
		}
		dir = parent
	}
}

// Tool returns the path of a test-bed tool (kube-apiserver, etcd, vault,
// helm), building it into the cache on first use; envVar overrides it.
func Tool(tool, envVar string) (string, error) { return toolPath(tool, envVar) }

// toolPath returns the binary for tool: envVar when set, else the cached
// build from hack/build-tool.sh (built on first use).
func toolPath(tool, envVar string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", "build-tool.sh"), tool)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build %s: %w: %s", tool, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before we bind it, so callers retry start-up on failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// onFreePort calls start with free ports until it succeeds, three times
// at most (another process may take a port between asking and binding).
func onFreePort(start func(port int) error) error {
	var err error
	for range 3 {
		port, perr := freePort()
		if perr != nil {
			return perr
		}
		if err = start(port); err == nil {
			return nil
		}
	}
	return err
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// tailFile returns the last few lines of a log file, for start-up errors.
func tailFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
