package image_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// haveContainerd says whether a private containerd can run here: as root,
// with containerd, ctr and runc installed (Debian's containerd package).
func haveContainerd() bool {
	for _, tool := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false
		}
	}
	return os.Geteuid() == 0
}

// checkWithContainerd imports the archive into a containerd of its own (its
// own socket, root and state, no CRI, so a kubelet's containerd on this
// machine is left alone) under the name a kubelet asks for, and runs the
// binary with a read-only root filesystem and the image's config (user 65532).
func checkWithContainerd(t *testing.T, archive, ref string) {
	dir, err := os.MkdirTemp("/tmp", "image-ctrd-") // short: the socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.toml")
	sock := filepath.Join(dir, "sock")
	conf := "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir + "/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"" + sock + "\"\n"
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command("containerd", "--config", config)
	daemon.Stdout, daemon.Stderr = log, log
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.Process.Kill()
		daemon.Wait()
		log.Close()
		os.RemoveAll(dir)
	})
	ctr := func(args ...string) string {
		return run(t, "ctr", append([]string{"--address", sock, "--namespace", "image-test"}, args...)...)
	}
	for deadline := time.Now().Add(20 * time.Second); exec.Command("ctr", "--address", sock, "version").Run() != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(log.Name())
			t.Fatalf("containerd did not start:\n%s", data)
		}
	}
	ctr("images", "import", archive)
	if out := ctr("images", "ls", "--quiet"); strings.TrimSpace(out) != ref {
		t.Fatalf("ctr images import named %q, want %q", out, ref)
	}
	out := ctr("run", "--rm", "--read-only", ref, "image-test-help", entrypoint, "--help")
	if !strings.Contains(out, "credentials-api") {
		t.Errorf("--help in containerd printed:\n%s", out)
	}
}
