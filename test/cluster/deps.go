//go:build e2ecluster

package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// deps are the platform's services as the pods reach them, at the host's
// address: Postgres and Vault of the test bed (which listen on loopback)
// behind forwarders, and a Kafka-protocol broker listening on that address.
type deps struct {
	databaseURL string
	vault       string // host:port
	kafka       string // host:port
}

func startDeps(t *testing.T, n *node) deps {
	t.Helper()
	bed := testbed.Start(t, testbed.Needs{Postgres: true, Vault: true, VaultKVMounts: []string{"ss3/kv"}})
	var d deps
	pg := forward(t, n.ip, fmt.Sprintf("127.0.0.1:%d", bed.Postgres.Port()))
	d.databaseURL = strings.Replace(bed.DatabaseURL, fmt.Sprintf("127.0.0.1:%d", bed.Postgres.Port()), pg, 1)
	d.vault = forward(t, n.ip, strings.TrimPrefix(bed.Vault.Addr(), "http://"))
	// kfake advertises the address it listens on: the host's, not loopback,
	// so the pods can follow the metadata it answers.
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(2, "platform.events", "platform.events.poison", "webhook.delivered", "webhook.dead_lettered"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, net.JoinHostPort(n.ip, "0")) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	d.kafka = kafka.ListenAddrs()[0]
	n.setUpVault(bed.Vault)
	return d
}

// forward relays connections to the host's address onto a loopback server.
func forward(t *testing.T, ip, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return l.Addr().String()
}

// setUpVault configures Kubernetes auth against this cluster (Vault outside
// it, with a reviewer ServiceAccount, as docs/least-privilege.md describes)
// and runs config/vault/setup.sh for the release's ServiceAccounts.
func (n *node) setUpVault(v *testbed.Vault) {
	t := n.t
	const reviewer = "vault-token-reviewer"
	n.kubectl("-n", "kube-system", "create", "serviceaccount", reviewer)
	n.kubectl("create", "clusterrolebinding", reviewer, "--clusterrole=system:auth-delegator", "--serviceaccount=kube-system:"+reviewer)
	jwt := n.kubectl("-n", "kube-system", "create", "token", reviewer, "--duration=4h")
	ca, err := os.ReadFile(n.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host": fmt.Sprintf("https://%s:%d", n.ip, apiPort), "kubernetes_ca_cert": string(ca),
		"token_reviewer_jwt": jwt, "disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatalf("configure Vault's kubernetes auth: %v", err)
	}
	vaultBin := tool(t, "vault")
	setup := exec.Command("sh", filepath.Join(n.root, "config", "vault", "setup.sh"))
	setup.Env = append(os.Environ(), "PATH="+filepath.Dir(vaultBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"VAULT_ADDR="+v.Addr(), "VAULT_TOKEN="+v.Token(), "HOME="+n.dir, "NAMESPACE="+namespace, "SA_PREFIX="+release+"-")
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("config/vault/setup.sh: %v\n%s", err, out)
	}
}

// hostBinary builds the binary for the host side of the story (produce).
func (n *node) hostBinary() string {
	bin := filepath.Join(n.dir, "bin", "integration-operator")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/integration-operator")
	build.Dir = n.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		n.t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

var appVersion = regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?`)

// loadImage imports the OCI archive of make image (IMAGE_ARCHIVE) into
// containerd under the name the chart runs by default,
// integration-operator:<appVersion>, and returns that name.
func (n *node) loadImage() string {
	t := n.t
	chart, err := os.ReadFile(filepath.Join(n.root, "charts", "integration-operator", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := appVersion.FindSubmatch(chart)
	if m == nil {
		t.Fatal("no appVersion in Chart.yaml")
	}
	image := "integration-operator:" + string(m[1])
	ref := "docker.io/library/" + image
	archive := os.Getenv("IMAGE_ARCHIVE")
	if archive == "" {
		t.Fatal("IMAGE_ARCHIVE (the OCI archive of make image) is not set: run make e2e-cluster")
	}
	before := n.ctr("images", "ls", "-q")
	n.ctr("images", "import", archive)
	if !strings.Contains("\n"+n.ctr("images", "ls", "-q")+"\n", "\n"+ref+"\n") {
		// The archive names it otherwise (a registry prefix): tag what it brought.
		var imported []string
		for _, name := range strings.Fields(n.ctr("images", "ls", "-q")) {
			if !strings.Contains("\n"+before+"\n", "\n"+name+"\n") {
				imported = append(imported, name)
			}
		}
		if len(imported) != 1 {
			t.Fatalf("%s brought images %v, want one to run as %s", archive, imported, ref)
		}
		n.ctr("images", "tag", imported[0], ref)
	}
	return image
}
