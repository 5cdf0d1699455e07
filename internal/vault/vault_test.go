package vault_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ss3dev/integration-operator/internal/testbed"
	"github.com/ss3dev/integration-operator/internal/vault"
)

func TestTokenAuthReadWriteListDelete(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Vault: true, VaultKVMounts: []string{"ss3/kv"}})
	ctx := context.Background()
	c, err := vault.New(ctx, vault.Config{Address: bed.Vault.Addr(), Token: bed.Vault.Token()})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Path("webhook/abc/secret"); got != "ss3/kv/integration-service/webhook/abc/secret" {
		t.Fatalf("default path %q", got)
	}
	if _, _, err := c.Get(ctx, "webhook/abc/secret"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
	v, err := c.Put(ctx, "webhook/abc/secret", map[string]string{"secret": "s1"})
	if err != nil || v != 1 {
		t.Fatalf("put: %d %v", v, err)
	}
	data, version, err := c.Get(ctx, "webhook/abc/secret")
	if err != nil || data["secret"] != "s1" || version != 1 {
		t.Fatalf("get: %v %d %v", data, version, err)
	}
	keys, err := c.List(ctx, "webhook")
	if err != nil || len(keys) != 1 || keys[0] != "abc/" {
		t.Fatalf("list: %v %v", keys, err)
	}
	if err := c.Delete(ctx, "webhook/abc/secret"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "webhook/abc/secret"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := c.Delete(ctx, "webhook/abc/secret"); err != nil {
		t.Fatalf("deleting what is gone should succeed: %v", err)
	}

	bed.Vault.Stop()
	_, _, err = c.Get(ctx, "webhook/abc/secret")
	if err == nil || !vault.IsUnavailable(err) {
		t.Fatalf("a stopped Vault should read as unavailable, got %v", err)
	}
}

func TestKubernetesAuth(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Kube: true, Vault: true, VaultKVMounts: []string{"ss3/kv"}})
	ctx := context.Background()
	k8s, err := kubernetes.NewForConfig(bed.Kube.Config)
	if err != nil {
		t.Fatal(err)
	}

	// The operator's service account, allowed to have its tokens reviewed
	// (Vault presents the client's own token to the TokenReview API).
	const ns, sa = "default", "integration-operator"
	if _, err := k8s.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k8s.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "integration-operator-tokenreview"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := k8s.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}

	root, err := bed.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host":        bed.Kube.Config.Host,
		"kubernetes_ca_cert":     string(bed.Kube.Config.CAData),
		"disable_local_ca_jwt":   true,
		"disable_iss_validation": true,
	}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicyWithContext(ctx, "integration-operator", `
path "ss3/kv/data/integration-service/*"     { capabilities = ["create", "read", "update"] }
path "ss3/kv/metadata/integration-service/*" { capabilities = ["read", "list", "delete"] }
`); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/kubernetes/role/integration-operator", map[string]any{
		"bound_service_account_names":      sa,
		"bound_service_account_namespaces": ns,
		"token_policies":                   "integration-operator",
		"token_ttl":                        "10m",
	}); err != nil {
		t.Fatal(err)
	}

	c, err := vault.New(ctx, vault.Config{Address: bed.Vault.Addr(), Auth: vault.AuthKubernetes,
		Role: "integration-operator", ServiceAccountToken: tokenFile})
	if err != nil {
		t.Fatalf("kubernetes login: %v", err)
	}
	if _, err := c.Put(ctx, "connector/c1/api-key", map[string]string{"value": "k"}); err != nil {
		t.Fatalf("write with a kubernetes-auth token: %v", err)
	}

	// A revoked token is replaced by logging in again.
	if _, err := root.Logical().WriteWithContext(ctx, "auth/token/revoke-orphan", map[string]any{"token": vault.TokenOf(c)}); err != nil {
		t.Fatal(err)
	}
	if data, _, err := c.Get(ctx, "connector/c1/api-key"); err != nil || data["value"] != "k" {
		t.Fatalf("read after revocation: %v %v", data, err)
	}

	// Outside the policy: refused, and not mistaken for an outage.
	if _, err := c.Put(ctx, "../shared/kafka", map[string]string{"x": "y"}); err == nil || vault.IsUnavailable(err) {
		t.Fatalf("a write outside the policy should be refused as such, got %v", err)
	}
}

func ptrInt64(v int64) *int64 { return &v }
