//go:build e2ecluster

package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// Fixed addresses of the one node. They are unusual on purpose, so they do
// not meet another network of the machine; IO_CLUSTER_DIR moves the state.
const (
	nodeName     = "io-node"
	podCIDR      = "10.222.0.0/24"
	serviceCIDR  = "10.223.0.0/16"
	apiServiceIP = "10.223.0.1"
	bridgeName   = "io-cni0"
	pauseImage   = "registry.k8s.io/pause:3.10"
	etcdPort     = 23790
	apiPort      = 6443
)

// node is a single-node cluster: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, containerd (with runc and the reference CNI plugins),
// kubelet and kube-proxy, all as host processes.
type node struct {
	t          *testing.T
	root       string // repository
	dir        string // state directory, removed by hack/cluster/down.sh
	ip         string // the host's address: node IP, API server, and where pods reach the host
	pki        *pki
	kubeconfig string // admin
	env        []string
	socket     string // containerd
}

func stateDir() string {
	if d := os.Getenv("IO_CLUSTER_DIR"); d != "" {
		return d
	}
	return "/tmp/io-e2e-cluster"
}

// hostIP is the source address of the default route: an address pods can
// reach the host at through the bridge, and the API server can be bound to.
func hostIP() (string, error) {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return "", fmt.Errorf("no default route to take the node IP from: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := testbed.Tool(name, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startNode brings the cluster up and registers its teardown (pods deleted
// while the kubelet runs, so their networks are released; then down.sh).
func startNode(t *testing.T) *node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("make e2e-cluster runs a kubelet and containerd: it needs root")
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, root: root, dir: stateDir()}
	if n.ip, err = hostIP(); err != nil {
		t.Fatal(err)
	}
	// A previous run killed before its teardown leaves its state: clear it.
	n.down()
	for _, d := range []string{"pids", "logs", "bin", "cni/net.d", "kubelet", "etcd"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(n.stop)
	n.snapshotHost()
	n.env = append(os.Environ(), "KUBECONFIG="+filepath.Join(n.dir, "pki", "admin.kubeconfig"))
	bins := map[string]string{}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "cni-plugins"} {
		bins[b] = tool(t, b)
	}
	// down.sh runs kube-proxy --cleanup from here, even when the cache moved.
	if err := os.Symlink(bins["kube-proxy"], filepath.Join(n.dir, "bin", "kube-proxy")); err != nil {
		t.Fatal(err)
	}
	n.setUpPKI()
	n.setUpNetwork()

	n.start("etcd", bins["etcd"], "--data-dir", filepath.Join(n.dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort+10), "--unsafe-no-fsync")
	p := n.pki.path
	saKey := p("sa.key")
	n.start("kube-apiserver", bins["kube-apiserver"],
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--bind-address", n.ip, "--advertise-address", n.ip, "--secure-port", strconv.Itoa(apiPort),
		"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
		"--client-ca-file", n.pki.CA(),
		"--kubelet-client-certificate", p("apiserver-kubelet-client.crt"), "--kubelet-client-key", p("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", n.pki.CA(), "--kubelet-preferred-address-types", "InternalIP",
		"--service-cluster-ip-range", serviceCIDR, "--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--cert-dir", filepath.Join(n.dir, "pki", "apiserver-tmp"),
		"--requestheader-client-ca-file", n.pki.CA(), "--requestheader-allowed-names", "front-proxy-client",
		"--requestheader-username-headers", "X-Remote-User", "--requestheader-group-headers", "X-Remote-Group",
		"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
		"--proxy-client-cert-file", p("front-proxy-client.crt"), "--proxy-client-key-file", p("front-proxy-client.key"))
	n.eventually(2*time.Minute, "API server ready", func() error {
		_, err := n.run("kubectl", "get", "--raw", "/readyz")
		return err
	})
	n.start("kube-controller-manager", bins["kube-controller-manager"],
		"--kubeconfig", n.componentKubeconfig("kube-controller-manager"),
		"--authentication-kubeconfig", n.componentKubeconfig("kube-controller-manager"),
		"--authorization-kubeconfig", n.componentKubeconfig("kube-controller-manager"),
		"--bind-address", "127.0.0.1", "--leader-elect=false", "--use-service-account-credentials",
		"--service-account-private-key-file", saKey, "--root-ca-file", n.pki.CA(),
		"--service-cluster-ip-range", serviceCIDR)
	n.start("kube-scheduler", bins["kube-scheduler"],
		"--kubeconfig", n.componentKubeconfig("kube-scheduler"),
		"--authentication-kubeconfig", n.componentKubeconfig("kube-scheduler"),
		"--authorization-kubeconfig", n.componentKubeconfig("kube-scheduler"),
		"--bind-address", "127.0.0.1", "--leader-elect=false")

	n.startContainerd(bins["cni-plugins"])
	n.importPauseImage()
	kubeletConfig := filepath.Join(n.dir, "kubelet.yaml")
	n.writeFile(kubeletConfig, fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 only (a hybrid hierarchy, no controllers in v2).
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s
address: %[2]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: %[3]s}}
authorization: {mode: Webhook}
tlsCertFile: %[4]s
tlsPrivateKeyFile: %[5]s
failSwapOn: false
# Its own -999 cannot be set without CAP_SYS_RESOURCE either.
oomScoreAdj: 0
serializeImagePulls: false
# A shared 2-core sandbox: do not evict for pressure the test does not cause.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
`, n.socket, n.ip, n.pki.CA(), p("kubelet-serving.crt"), p("kubelet-serving.key")))
	n.start("kubelet", bins["kubelet"], "--config", kubeletConfig,
		"--kubeconfig", n.componentKubeconfig("kubelet"), "--root-dir", filepath.Join(n.dir, "kubelet"),
		"--hostname-override", nodeName, "--node-ip", n.ip)
	proxyConfig := filepath.Join(n.dir, "kube-proxy.yaml")
	n.writeFile(proxyConfig, fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
clusterCIDR: %s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Leave the machine's conntrack table size alone.
conntrack: {maxPerCore: 0}
`, n.componentKubeconfig("kube-proxy"), nodeName, podCIDR))
	n.start("kube-proxy", bins["kube-proxy"], "--config", proxyConfig)
	n.eventually(3*time.Minute, "node Ready", func() error {
		out, err := n.run("kubectl", "get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || out != "True" {
			return fmt.Errorf("Ready=%q %v", out, err)
		}
		return nil
	})
	return n
}

// snapshotHost records what teardown must restore or must not touch.
func (n *node) snapshotHost() {
	names, _ := filepath.Glob("/var/run/netns/cni-*")
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	n.writeFile(filepath.Join(n.dir, "netns.before"), strings.Join(names, "\n")+"\n")
	if fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil {
		n.writeFile(filepath.Join(n.dir, "ip_forward.before"), string(fwd))
	}
}

func (n *node) setUpPKI() {
	t := n.t
	var err error
	if n.pki, err = newPKI(filepath.Join(n.dir, "pki")); err != nil {
		t.Fatal(err)
	}
	if _, err := n.pki.serviceAccountKey(); err != nil {
		t.Fatal(err)
	}
	certs := []struct {
		name, cn string
		orgs     []string
		hosts    []string
	}{
		{"apiserver", "kube-apiserver", nil, []string{n.ip, apiServiceIP, "127.0.0.1", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil},
		{"admin", "io-e2e-admin", []string{"system:masters"}, nil},
		// The identities the default RBAC and the Node authorizer expect.
		{"kubelet", "system:node:" + nodeName, []string{"system:nodes"}, nil},
		{"kubelet-serving", nodeName, nil, []string{n.ip, nodeName}},
		{"kube-controller-manager", "system:kube-controller-manager", nil, nil},
		{"kube-scheduler", "system:kube-scheduler", nil, nil},
		{"kube-proxy", "system:kube-proxy", nil, nil},
		// The front proxy's identity, with which kube-apiserver calls
		// aggregated APIs (the delivery API) on its users' behalf. A
		// cluster often has a CA of its own for it; one CA does here.
		{"front-proxy-client", "front-proxy-client", nil, nil},
	}
	for _, c := range certs {
		if err := n.pki.issue(c.name, c.cn, c.orgs, c.hosts...); err != nil {
			t.Fatal(err)
		}
	}
	n.kubeconfig = n.componentKubeconfig("admin")
}

func (n *node) componentKubeconfig(name string) string {
	path, err := n.pki.kubeconfig(name, fmt.Sprintf("https://%s:%d", n.ip, apiPort))
	if err != nil {
		n.t.Fatal(err)
	}
	return path
}

// setUpNetwork writes the CNI config (one bridge, addresses from host-local,
// no masquerading: the pods only talk to the host and to each other) and
// lets the host forward between the bridge and Service addresses.
func (n *node) setUpNetwork() {
	n.writeFile(filepath.Join(n.dir, "cni", "net.d", "10-io-e2e.conflist"), fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "io-e2e",
  "plugins": [{
    "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}],
             "dataDir": %q}
  }]
}
`, bridgeName, podCIDR, filepath.Join(n.dir, "cni", "ipam")))
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		n.t.Fatalf("enable ip_forward: %v", err)
	}
}

func (n *node) startContainerd(cniBinDir string) {
	n.socket = filepath.Join(n.dir, "containerd.sock")
	config := filepath.Join(n.dir, "containerd.toml")
	n.writeFile(config, fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.grpc.v1.cri"]
  # No CAP_SYS_RESOURCE here: an oom_score_adj below containerd's own (the
  # kubelet asks -998 for sandboxes) fails runc with "failed to update
  # /proc/self/oom_score_adj: Permission denied"; clamp it instead.
  restrict_oom_score_adj = true
  sandbox_image = %[4]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[6]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[7]q
`, filepath.Join(n.dir, "containerd", "root"), filepath.Join(n.dir, "containerd", "state"), n.socket, pauseImage,
		cniBinDir, filepath.Join(n.dir, "cni", "net.d"), filepath.Join(n.dir, "containerd", "opt")))
	n.start("containerd", "containerd", "--config", config)
	n.eventually(time.Minute, "containerd up", func() error {
		_, err := n.run("ctr", "-a", n.socket, "version")
		return err
	})
}

// importPauseImage builds hack/cluster/pause into the sandbox image.
func (n *node) importPauseImage() {
	bin := filepath.Join(n.dir, "bin", "pause")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./hack/cluster/pause")
	build.Dir = n.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		n.t.Fatalf("build pause: %v\n%s", err, out)
	}
	archive := filepath.Join(n.dir, "pause.tar")
	if err := writeOneFileImage(archive, pauseImage, bin, "/pause", 65535); err != nil {
		n.t.Fatal(err)
	}
	n.ctr("images", "import", archive)
}

// ctr runs ctr in the CRI's namespace, failing the test on error.
func (n *node) ctr(args ...string) string {
	n.t.Helper()
	out, err := n.run("ctr", append([]string{"-a", n.socket, "-n", "k8s.io"}, args...)...)
	if err != nil {
		n.t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// start runs a component in the background, its output in logs/<name>.log
// and its pid in pids/<name>.pid for down.sh. It dies with the test process.
func (n *node) start(name, bin string, args ...string) {
	n.t.Helper()
	logf, err := os.Create(filepath.Join(n.dir, "logs", name+".log"))
	if err != nil {
		n.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait() }()
	n.writeFile(filepath.Join(n.dir, "pids", name+".pid"), strconv.Itoa(cmd.Process.Pid))
}

func (n *node) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = n.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func (n *node) kubectl(args ...string) string {
	n.t.Helper()
	out, err := n.run("kubectl", args...)
	if err != nil {
		n.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *node) writeFile(path, data string) {
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) eventually(timeout time.Duration, what string, cond func() error) {
	n.t.Helper()
	testbed.Eventually(n.t, timeout, time.Second, what, cond)
}

// stop deletes every pod while the kubelet still runs, so each sandbox's
// network is released through CNI, then tears the rest down. On failure it
// logs the tail of each component's log first.
func (n *node) stop() {
	if n.t.Failed() {
		n.dumpLogs()
		n.keepLogs()
	}
	if n.kubeconfig != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		_ = exec.CommandContext(ctx, "kubectl", "--kubeconfig", n.kubeconfig, "delete", "pods", "--all", "--all-namespaces",
			"--grace-period=5", "--wait=true").Run()
	}
	n.down()
}

func (n *node) down() {
	cmd := exec.Command(filepath.Join(n.root, "hack", "cluster", "down.sh"))
	cmd.Env = append(os.Environ(), "IO_CLUSTER_DIR="+n.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Errorf("hack/cluster/down.sh: %v\n%s", err, out)
	}
}

// keepLogs copies the components' logs and runc's per-container logs out of
// the state directory, which down.sh removes, to <state>-logs.
func (n *node) keepLogs() {
	keep := n.dir + "-logs"
	_ = os.RemoveAll(keep)
	_ = exec.Command("cp", "-r", filepath.Join(n.dir, "logs"), keep).Run()
	runcLogs, _ := filepath.Glob(filepath.Join(n.dir, "containerd", "state", "io.containerd.runtime.v2.task", "*", "*", "log.json"))
	for _, l := range runcLogs {
		_ = exec.Command("cp", l, filepath.Join(keep, "runc-"+filepath.Base(filepath.Dir(l))+".json")).Run()
	}
	n.t.Logf("component logs kept in %s", keep)
}

func (n *node) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(n.dir, "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		n.t.Logf("--- %s (tail) ---\n%s", filepath.Base(l), tailLines(strings.TrimRight(string(data), "\n"), 25))
	}
	if out, err := n.run("kubectl", "get", "pods", "-A", "-o", "wide"); err == nil {
		n.t.Logf("--- pods ---\n%s", out)
	}
	if out, err := n.run("kubectl", "get", "events", "-A", "--sort-by=.lastTimestamp"); err == nil {
		n.t.Logf("--- events ---\n%s", tailLines(out, 40))
	}
}

func tailLines(s string, k int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return strings.Join(lines, "\n")
}
