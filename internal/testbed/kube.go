package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
)

// Kube is a real kube-apiserver and etcd (envtest) with our CRDs installed.
type Kube struct {
	env        *envtest.Environment
	Config     *rest.Config
	Client     client.Client
	Scheme     *runtime.Scheme
	kubeconfig string
}

// StartKube starts kube-apiserver and etcd, built from source by
// hack/build-tool.sh, and installs the CRDs from config/crd/bases.
func StartKube() (*Kube, error) { return startKube(nil) }

// FrontProxyClient is the name on the front proxy's client certificate,
// which an aggregated API server is told to trust (requestheader-allowed-names).
const FrontProxyClient = "front-proxy-client"

// StartKubeWithAggregation starts kube-apiserver as a cluster runs it for
// aggregated APIs: with front-proxy certificates, so that it proxies an
// APIService's requests with the user in X-Remote-* headers, which the
// aggregated server trusts because the front-proxy CA signed the caller.
// kube-apiserver publishes that CA in kube-system's
// extension-apiserver-authentication ConfigMap, where the aggregated
// server reads it. The control plane stops when the test ends.
func StartKubeWithAggregation(t testing.TB) *Kube {
	t.Helper()
	dir := t.TempDir()
	ca := NewCA(t)
	cert, key := ca.IssueClient(t, FrontProxyClient)
	files := map[string][]byte{"front-proxy-ca.crt": ca.PEM, "front-proxy-client.crt": cert, "front-proxy-client.key": key}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k, err := startKube(map[string]string{
		"requestheader-client-ca-file":       filepath.Join(dir, "front-proxy-ca.crt"),
		"requestheader-allowed-names":        FrontProxyClient,
		"requestheader-username-headers":     "X-Remote-User",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"proxy-client-cert-file":             filepath.Join(dir, "front-proxy-client.crt"),
		"proxy-client-key-file":              filepath.Join(dir, "front-proxy-client.key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func startKube(args map[string]string) (*Kube, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	apiserver, err := toolPath("kube-apiserver", "TEST_ASSET_KUBE_APISERVER")
	if err != nil {
		return nil, err
	}
	etcd, err := toolPath("etcd", "TEST_ASSET_ETCD")
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's logger; without one it
	// prints a warning with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := integrationsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	env.ControlPlane.GetAPIServer().Path = apiserver
	env.ControlPlane.Etcd = &envtest.Etcd{Path: etcd}
	for k, v := range args {
		env.ControlPlane.GetAPIServer().Configure().Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		// Start can fail after the control plane is up (a bad CRD); stop it.
		_ = env.Stop()
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	k := &Kube{env: env, Config: cfg, Scheme: scheme}
	if k.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return k, nil
}

// Kubeconfig writes a kubeconfig for an admin user, for kubectl, and
// returns its path. It is removed by Close.
func (k *Kube) Kubeconfig() (string, error) {
	if k.kubeconfig != "" {
		return k.kubeconfig, nil
	}
	user, err := k.env.AddUser(envtest.User{Name: "testbed-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "testbed-kubeconfig-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	k.kubeconfig = f.Name()
	return k.kubeconfig, nil
}

// Close stops the control plane.
func (k *Kube) Close() {
	if k.kubeconfig != "" {
		_ = os.Remove(k.kubeconfig)
	}
	_ = k.env.Stop()
}
