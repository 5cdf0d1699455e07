package image_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// machine is left alone) under the name a kubelet asks for, runs it with a
// read-only root filesystem and the image's config, and checks the process
// is up as user 65532 on a read-only root.
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
	// A component that stays up (the sample receiver, in the container's
	// own network namespace), to look at it from here.
	ctr("run", "--detach", "--log-uri", "file://"+filepath.Join(dir, "receiver.log"), "--read-only", ref, "image-test", entrypoint, "receive", "--listen", "127.0.0.1:9000", "--secret-file", "/etc/passwd")
	t.Cleanup(func() {
		exec.Command("ctr", "--address", sock, "--namespace", "image-test", "task", "kill", "--signal", "KILL", "image-test").Run()
		time.Sleep(500 * time.Millisecond)
		exec.Command("ctr", "--address", sock, "--namespace", "image-test", "task", "rm", "--force", "image-test").Run()
		exec.Command("ctr", "--address", sock, "--namespace", "image-test", "containers", "rm", "image-test").Run()
	})
	var pid string
	for _, line := range strings.Split(ctr("task", "ls"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "image-test" && f[2] == "RUNNING" {
			pid = f[1]
		}
	}
	if pid == "" {
		t.Fatalf("the receiver is not running:\n%s", ctr("task", "ls"))
	}
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "\nUid:\t65532\t65532\t65532\t65532\n"; !strings.Contains(string(status), want) {
		t.Errorf("the process runs as %q, want uid 65532 (the image's user)", regexp.MustCompile(`Uid:.*`).FindString(string(status)))
	}
	mounts, err := os.ReadFile(filepath.Join("/proc", pid, "mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	if root := regexp.MustCompile(`(?m)^\S+ \S+ \S+ / / (\S+)`).FindSubmatch(mounts); root == nil || !strings.HasPrefix(string(root[1]), "ro") {
		t.Errorf("root filesystem not read-only: %q", root)
	}
}
