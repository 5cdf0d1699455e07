package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ss3dev/integration-operator/internal/connectors/inbound"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// The names config/default gives: namespace, and ServiceAccounts and Vault
// roles as config/vault/setup.sh binds them.
const (
	lpNamespace   = "integration-operator"
	lpPrefix      = "integration-operator-"
	vaultAudience = "vault"
)

// lpBed is the test bed with Vault's Kubernetes auth pointed at the API server.
type lpBed struct {
	t     *testing.T
	w     *world
	bed   *testbed.Bed
	admin kubernetes.Interface
}

// identity is what one component runs with: a token of its own
// ServiceAccount for the API server, and one with Vault's audience that it
// exchanges, by its own role, for a Vault token.
type identity struct {
	component string
	apiToken  string
	// vaultJWT is the projected token's content; vaultJWTFile holds it for the process.
	vaultJWT     string
	vaultJWTFile string
}

// TestLeastPrivilege runs each component with nothing but its own identity:
// the RBAC config/default ships and the Vault policies and roles
// config/vault/setup.sh writes. Each works, and what it must not do is refused.
func TestLeastPrivilege(t *testing.T) {
	w, bed := newWorld(t)
	lp := &lpBed{t: t, w: w, bed: bed, admin: kubernetes.NewForConfigOrDie(bed.Kube.Config)}
	lp.applyShippedRBAC()
	lp.setUpVault()

	manager, dispatcher, credentialsAPI := lp.identity("manager"), lp.identity("dispatcher"), lp.identity("credentials-api")

	// Each role admits its own ServiceAccount only, and only with Vault's audience.
	if _, err := lp.vaultLogin("dispatcher", manager.vaultJWT); err == nil {
		t.Fatal("the dispatcher's Vault role admitted the manager's ServiceAccount")
	}
	if _, err := lp.vaultLogin("dispatcher", dispatcher.apiToken); err == nil {
		t.Fatal("the dispatcher's Vault role admitted a token meant for the API server")
	}

	// The manager, with its own ServiceAccount and its own Vault role; the
	// database URL comes from Vault (its policy reads db.url).
	managerLog := lp.run(manager, true, "manager", "--metrics-bind-address", freeAddr(t), "--health-probe-bind-address", freeAddr(t),
		"--delivery-status-interval", "1s", "--bcrypt-cost", "4", "--orphan-sweep-interval", "2s", "--dev-logs")
	const stripeSecret = "whsec_least_privilege_secret"
	receiverAddr := freeAddr(t)
	manifest := filepath.Join(w.dir, "least-privilege.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: integrations.ss3.dev/v1
kind: WebhookSubscription
metadata: {name: lp-orders, namespace: default}
spec:
  storeId: store-7
  displayName: least privilege
  targetURL: http://%s/hooks
  allowInsecureHTTP: true
  events: ["order.*"]
---
apiVersion: integrations.ss3.dev/v1
kind: ApiCredential
metadata: {name: lp-key, namespace: default}
spec: {storeId: store-7, type: ApiKey, scopes: [orders:read], secretName: lp-key}
---
apiVersion: v1
kind: Secret
metadata: {name: lp-stripe, namespace: default}
stringData: {api-secret: %s}
---
apiVersion: integrations.ss3.dev/v1
kind: ConnectorConfig
metadata: {name: lp-stripe, namespace: default}
spec:
  storeId: store-7
  connectorType: stripe
  displayName: Stripe
  credentialsSecretRef: {name: lp-stripe}
`, receiverAddr, stripeSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	w.kubectl("apply", "-f", manifest)
	w.kubectl("wait", "--for=condition=Ready", "webhooksubscription/lp-orders", "apicredential/lp-key", "connectorconfig/lp-stripe", "--timeout=60s")

	// The dispatcher and the credentials API: no API token at all (as their
	// pods mount none), database URL and Kafka brokers from Vault.
	inboundAddr, credAPI := freeAddr(t), freeAddr(t)
	dispatcherLog := lp.run(dispatcher, false, "dispatcher", "--metrics-bind-address", freeAddr(t), "--inbound-bind-address", inboundAddr,
		"--allow-networks", "127.0.0.0/8", "--poll-interval", "100ms", "--kafka-session-timeout", "6s", "--dev-logs")
	credentialsAPILog := lp.run(credentialsAPI, false, "credentials-api", "--listen-address", credAPI, "--metrics-bind-address", freeAddr(t), "--dev-logs")

	// The dispatcher signs with the secret it reads from Vault.
	_, receiverLog := w.startReceiver(receiverAddr, "lp-orders")
	if out, err := w.run(w.bin, "produce", "--store", "store-7", "--type", "order.placed", "--count", "2", "--rate", "0"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	w.eventually(60*time.Second, "two deliveries, signed with the secret from Vault", func() error {
		data, _ := os.ReadFile(receiverLog)
		if n := strings.Count(string(data), "signature=ok"); n != 2 {
			return fmt.Errorf("%d verified deliveries", n)
		}
		return nil
	})
	// It verifies a provider's webhook with the connector's credential from Vault.
	event := `{"id":"evt_lp1","object":"event","type":"charge.succeeded","created":1763900000,"data":{"object":{"id":"ch_1"}}}`
	url := "http://" + inboundAddr + w.kubectl("get", "connectorconfig", "lp-stripe", "-o", "jsonpath={.status.webhookPath}")
	w.eventually(30*time.Second, "a signed Stripe webhook accepted", func() error {
		out, _ := w.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
			"-H", "Stripe-Signature: "+inbound.SignStripe([]byte(event), stripeSecret, time.Now()), "--data-binary", event, url)
		if out != "200" {
			return fmt.Errorf("answered %s", out)
		}
		return nil
	})
	// The credentials API validates the issued key.
	key := lp.secretValue("lp-key", "api-key")
	w.eventually(30*time.Second, "the issued key validates", func() error {
		out, err := w.run("curl", "-sS", "-H", "Authorization: Bearer "+key, "http://"+credAPI+"/credentials/validate")
		if err != nil || !strings.Contains(out, `"valid":true`) || !strings.Contains(out, `"storeId":"store-7"`) {
			return fmt.Errorf("validate: %v %.200s", err, out)
		}
		return nil
	})

	// What each must not do, with its own credentials, is refused.
	subID := strings.TrimPrefix(strings.TrimSuffix(w.kubectl("get", "whsub", "lp-orders", "-o", "jsonpath={.status.vaultPath}"), "/secret"),
		"ss3/kv/integration-service/webhook/")
	connectorID := strings.TrimSuffix(strings.TrimPrefix(w.kubectl("get", "connectorconfig", "lp-stripe", "-o", "jsonpath={.status.webhookPath}"), "/connectors/"), "/webhook")
	for _, id := range []string{subID, connectorID} {
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("no id in the status: %q", id)
		}
	}
	signingSecret := "integration-service/webhook/" + subID + "/secret"
	for _, c := range []identity{dispatcher, credentialsAPI} {
		lp.refusedByAPIServer(c.component+" reads a Secret", http.StatusForbidden, c.apiToken, func(k kubernetes.Interface) error {
			_, err := k.CoreV1().Secrets("default").Get(context.Background(), "lp-key", metav1.GetOptions{})
			return err
		})
		lp.refusedByAPIServer(c.component+" lists Secrets", http.StatusForbidden, c.apiToken, func(k kubernetes.Interface) error {
			_, err := k.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{})
			return err
		})
		// The token its pod does hold is for Vault alone.
		lp.refusedByAPIServer(c.component+"'s Vault token at the API server", http.StatusUnauthorized, c.vaultJWT, func(k kubernetes.Interface) error {
			_, err := k.CoreV1().Secrets("default").Get(context.Background(), "lp-key", metav1.GetOptions{})
			return err
		})
	}
	dv := lp.vaultAs(dispatcher)
	lp.refusedByVault("dispatcher writes a signing secret", func() error {
		_, err := dv.KVv2("ss3/kv").Put(context.Background(), signingSecret, map[string]any{"secret": "attacker-chosen"})
		return err
	})
	lp.refusedByVault("dispatcher deletes a signing secret", func() error {
		return dv.KVv2("ss3/kv").DeleteMetadata(context.Background(), signingSecret)
	})
	lp.refusedByVault("dispatcher writes a connector credential", func() error {
		_, err := dv.KVv2("ss3/kv").Put(context.Background(), "integration-service/connector/"+connectorID+"/api-secret", map[string]any{"value": "x"})
		return err
	})
	lp.refusedByVault("dispatcher lists the signing secrets", func() error {
		_, err := dv.Logical().List("ss3/kv/metadata/integration-service/webhook")
		return err
	})
	cv := lp.vaultAs(credentialsAPI)
	lp.refusedByVault("credentials API reads a signing secret", func() error {
		_, err := cv.KVv2("ss3/kv").Get(context.Background(), signingSecret)
		return err
	})
	lp.refusedByVault("credentials API writes the database URL", func() error {
		_, err := cv.KVv2("ss3/kv").Put(context.Background(), "integration-service/db.url", map[string]any{"value": "postgres://attacker"})
		return err
	})
	mv := lp.vaultAs(manager)
	lp.refusedByVault("manager writes the platform's shared settings", func() error {
		_, err := mv.KVv2("ss3/kv").Put(context.Background(), "shared/kafka", map[string]any{"bootstrap.servers": "attacker:9092"})
		return err
	})
	// Owner references remove the manager's Secrets; it may not delete any.
	lp.refusedByAPIServer("manager deletes a Secret", http.StatusForbidden, manager.apiToken, func(k kubernetes.Interface) error {
		return k.CoreV1().Secrets("default").Delete(context.Background(), "lp-stripe", metav1.DeleteOptions{})
	})

	// The manager's policy covers its deletes and the orphan sweep's list.
	root, err := bed.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	orphan := "integration-service/webhook/" + uuid.NewString() + "/secret"
	if _, err := root.KVv2("ss3/kv").Put(context.Background(), orphan, map[string]any{"secret": "left behind"}); err != nil {
		t.Fatal(err)
	}
	w.kubectl("delete", "connectorconfig", "lp-stripe", "--timeout=60s")
	for what, path := range map[string]string{"the orphan sweep": orphan,
		"the connector's finalizer": "integration-service/connector/" + connectorID + "/api-secret"} {
		w.eventually(30*time.Second, what+" deletes from Vault", func() error {
			if _, err := root.KVv2("ss3/kv").GetMetadata(context.Background(), path); !errors.Is(err, vaultapi.ErrSecretNotFound) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
	}

	// Nothing any component did was refused along the way.
	for _, log := range []string{managerLog, dispatcherLog, credentialsAPILog} {
		data, _ := os.ReadFile(log)
		// Vault's 403 says "permission denied"; the API server's, "is forbidden".
		for _, refusal := range []string{"permission denied", "is forbidden"} {
			if strings.Contains(string(data), refusal) {
				t.Errorf("%s shows a refusal (%q):\n%s", filepath.Base(log), refusal, tail(string(data), 20))
			}
		}
	}
}

// applyShippedRBAC creates the ServiceAccounts and RBAC of config/default,
// as kustomize renders them (names prefixed, namespace set).
func (lp *lpBed) applyShippedRBAC() {
	t := lp.t
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(root, "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	ctx := context.Background()
	if err := lp.bed.Kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: lpNamespace}}); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(out)), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch obj.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := lp.bed.Kube.Client.Create(ctx, obj); err != nil {
				t.Fatalf("create %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
			kinds[obj.GetKind()]++
		}
	}
	if kinds["ServiceAccount"] != 3 {
		t.Fatalf("config/default ships %d ServiceAccounts, want one per component", kinds["ServiceAccount"])
	}
}

// setUpVault enables Kubernetes auth against the test's API server, with a
// reviewer ServiceAccount of Vault's own (as an in-cluster Vault has), and
// runs config/vault/setup.sh: the shipped policies and roles.
func (lp *lpBed) setUpVault() {
	t, ctx := lp.t, context.Background()
	const reviewer = "vault-token-reviewer"
	if _, err := lp.admin.CoreV1().ServiceAccounts(lpNamespace).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: reviewer}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lp.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: reviewer},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: reviewer, Namespace: lpNamespace}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	root, err := lp.bed.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host":      strings.TrimSuffix(lp.bed.Kube.Config.Host, "/"),
		"kubernetes_ca_cert":   string(lp.bed.Kube.Config.CAData),
		"token_reviewer_jwt":   lp.token(reviewer, nil),
		"disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatalf("configure Vault's kubernetes auth: %v", err)
	}
	vaultBin, err := testbed.Tool("vault", "VAULT_BIN")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	setup := exec.Command("sh", filepath.Join(repo, "config", "vault", "setup.sh"))
	setup.Env = append(os.Environ(), "PATH="+filepath.Dir(vaultBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"VAULT_ADDR="+lp.bed.Vault.Addr(), "VAULT_TOKEN="+lp.bed.Vault.Token(), "HOME="+lp.w.dir,
		"NAMESPACE="+lpNamespace, "SA_PREFIX="+lpPrefix)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("config/vault/setup.sh: %v\n%s", err, out)
	}
	// What the platform keeps in Vault: the database URL and Kafka brokers.
	kv := root.KVv2("ss3/kv")
	if _, err := kv.Put(ctx, "integration-service/db.url", map[string]any{"value": lp.bed.DatabaseURL}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "shared/kafka", map[string]any{"bootstrap.servers": lp.bed.Kafka.Brokers()[0]}); err != nil {
		t.Fatal(err)
	}
}

// token asks the TokenRequest API for a token of a ServiceAccount in the
// operator's namespace; no audiences means the API server's own.
func (lp *lpBed) token(serviceAccount string, audiences []string) string {
	lp.t.Helper()
	expiry := int64(3600)
	tr, err := lp.admin.CoreV1().ServiceAccounts(lpNamespace).CreateToken(context.Background(), serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &expiry}},
		metav1.CreateOptions{})
	if err != nil {
		lp.t.Fatalf("token for %s: %v", serviceAccount, err)
	}
	return tr.Status.Token
}

func (lp *lpBed) identity(component string) identity {
	id := identity{component: component,
		apiToken: lp.token(lpPrefix+component, nil), vaultJWT: lp.token(lpPrefix+component, []string{vaultAudience})}
	id.vaultJWTFile = filepath.Join(lp.w.dir, component+"-vault-token")
	if err := os.WriteFile(id.vaultJWTFile, []byte(id.vaultJWT), 0o600); err != nil {
		lp.t.Fatal(err)
	}
	return id
}

// run starts a component with its identity and nothing else: none of the
// bed's admin kubeconfig, root Vault token, database URL or brokers. With
// kubeAPI it gets a kubeconfig with its ServiceAccount's API token, as its
// pod mounts; without, no Kubernetes credentials at all.
func (lp *lpBed) run(id identity, kubeAPI bool, args ...string) string {
	t := lp.t
	home := filepath.Join(lp.w.dir, id.component+"-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "KUBECONFIG", name == "HOME", name == "DATABASE_URL", name == "KAFKA_BROKERS", strings.HasPrefix(name, "VAULT_"):
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home, "VAULT_ADDR="+lp.bed.Vault.Addr(), "VAULT_AUTH_METHOD=kubernetes",
		"VAULT_ROLE=integration-operator-"+id.component, "VAULT_SA_TOKEN_PATH="+id.vaultJWTFile)
	if kubeAPI {
		kubeconfig := filepath.Join(lp.w.dir, id.component+"-kubeconfig")
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: lp.bed.Kube.Config.Host, CertificateAuthorityData: lp.bed.Kube.Config.CAData}
		cfg.AuthInfos[id.component] = &clientcmdapi.AuthInfo{Token: id.apiToken}
		cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: id.component}
		cfg.CurrentContext = "test"
		if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
			t.Fatal(err)
		}
		env = append(env, "KUBECONFIG="+kubeconfig)
	}
	w := *lp.w
	w.env = env
	return w.start("own-identity-"+id.component, args...)
}

// vaultLogin exchanges a JWT for a Vault token by role (a component name).
func (lp *lpBed) vaultLogin(component, jwt string) (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	cfg.Address = lp.bed.Vault.Addr()
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	s, err := c.Logical().Write("auth/kubernetes/login", map[string]any{"role": "integration-operator-" + component, "jwt": jwt})
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil {
		return nil, errors.New("no token")
	}
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}

// vaultAs is the component's own Vault token, as it logs in.
func (lp *lpBed) vaultAs(id identity) *vaultapi.Client {
	lp.t.Helper()
	c, err := lp.vaultLogin(id.component, id.vaultJWT)
	if err != nil {
		lp.t.Fatalf("%s's Vault login: %v", id.component, err)
	}
	return c
}

func (lp *lpBed) refusedByVault(what string, op func() error) {
	lp.t.Helper()
	var re *vaultapi.ResponseError
	if err := op(); !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		lp.t.Errorf("%s: want 403 from Vault, got %v", what, err)
	}
}

func (lp *lpBed) refusedByAPIServer(what string, status int32, token string, op func(kubernetes.Interface) error) {
	lp.t.Helper()
	k := kubernetes.NewForConfigOrDie(&rest.Config{Host: lp.bed.Kube.Config.Host, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: lp.bed.Kube.Config.CAData}})
	var se apierrors.APIStatus
	if err := op(k); !errors.As(err, &se) || se.Status().Code != status {
		lp.t.Errorf("%s: want %d from the API server, got %v", what, status, err)
	}
}

// secretValue reads a key of a Secret in default as the admin.
func (lp *lpBed) secretValue(name, key string) string {
	lp.t.Helper()
	s, err := lp.admin.CoreV1().Secrets("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		lp.t.Fatal(err)
	}
	return string(s.Data[key])
}
