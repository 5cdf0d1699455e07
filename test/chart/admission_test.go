package chart_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// tenancyObjects returns a YAML stream's admission policy objects by kind.
func tenancyObjects(t *testing.T, stream string) map[string]*unstructured.Unstructured {
	t.Helper()
	objs := map[string]*unstructured.Unstructured{}
	for _, doc := range strings.Split(stream, "\n---\n") {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(obj.GetKind(), "ValidatingAdmissionPolicy") {
			objs[obj.GetKind()] = obj
		}
	}
	return objs
}

// renderTenancy renders the chart's admission-policy template with extra
// flags and returns its objects by kind.
func renderTenancy(t *testing.T, extra ...string) map[string]*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", "io", filepath.Join("charts", "integration-operator"), "--namespace", "integrations"}, extra...)
	return tenancyObjects(t, helm(t, args...))
}

// shipped reads one of config/admission's files.
func shipped(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "admission", file))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestChartRendersTheTenancyPolicyOfConfigAdmission(t *testing.T) {
	objs := renderTenancy(t)
	policy, binding := objs["ValidatingAdmissionPolicy"], objs["ValidatingAdmissionPolicyBinding"]
	if policy == nil || binding == nil {
		t.Fatalf("default values rendered %v, want the policy and its binding", objs)
	}
	// The same CEL as kustomize users get: make manifests copies it.
	if want := shipped(t, "policy.yaml"); !reflect.DeepEqual(policy.Object["spec"], want.Object["spec"]) {
		t.Errorf("the chart's policy differs from config/admission/policy.yaml (run make manifests):\n%v\nwant\n%v", policy.Object["spec"], want.Object["spec"])
	}
	if got, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName"); got != policy.GetName() || !strings.HasPrefix(got, "io-") {
		t.Errorf("binding points at %q, policy is %q (want it named after the release)", got, policy.GetName())
	}
	if got, _, _ := unstructured.NestedStringSlice(binding.Object, "spec", "validationActions"); !reflect.DeepEqual(got, []string{"Deny"}) {
		t.Errorf("default validationActions %v, want [Deny]", got)
	}

	warn := renderTenancy(t, "--set", "tenancyPolicy.validationActions={Warn,Audit}")["ValidatingAdmissionPolicyBinding"]
	if got, _, _ := unstructured.NestedStringSlice(warn.Object, "spec", "validationActions"); !reflect.DeepEqual(got, []string{"Warn", "Audit"}) {
		t.Errorf("validationActions %v, want [Warn Audit]", got)
	}
	if off := renderTenancy(t, "--set", "tenancyPolicy.enabled=false"); len(off) != 0 {
		t.Errorf("tenancyPolicy.enabled=false still renders %v", off)
	}
}

// config/default's namePrefix renames the policy; the binding must follow
// (kustomize knows the reference).
func TestKustomizeBindsThePrefixedPolicy(t *testing.T) {
	objs := tenancyObjects(t, kustomizeDefault(t))
	policy, binding := objs["ValidatingAdmissionPolicy"], objs["ValidatingAdmissionPolicyBinding"]
	if policy == nil || binding == nil {
		t.Fatalf("config/default has %v, want the policy and its binding", objs)
	}
	if got, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName"); got != policy.GetName() || got == shipped(t, "policy.yaml").GetName() {
		t.Errorf("binding points at %q, the prefixed policy is %q", got, policy.GetName())
	}
}

// The policy as the chart renders it, applied to a real API server, refuses
// an object for a store its namespace is not bound to and admits a bound one.
func TestChartTenancyPolicyIsEnforced(t *testing.T) {
	kube := testbed.Start(t, testbed.Needs{Kube: true}).Kube
	ctx := context.Background()
	objs := renderTenancy(t)
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if err := kube.Client.Create(ctx, objs[kind]); err != nil {
			t.Fatalf("create %s: %v", kind, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
		Annotations: map[string]string{integrationsv1.StoreIDsAnnotation: "store-1042"}}}
	if err := kube.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	credential := func(store string) *integrationsv1.ApiCredential {
		return &integrationsv1.ApiCredential{
			ObjectMeta: metav1.ObjectMeta{Name: "key-" + store, Namespace: ns.Name},
			Spec: integrationsv1.ApiCredentialSpec{StoreID: integrationsv1.StoreID(store), Type: integrationsv1.CredentialTypeAPIKey,
				Scopes: []integrationsv1.Scope{integrationsv1.ScopeOrdersRead}, SecretName: "key-" + store},
		}
	}
	// Policies are loaded asynchronously: wait for the refusal.
	const want = "storeId store-9 is not bound to namespace shop (bound: store-1042)"
	testbed.Eventually(t, 30*time.Second, 200*time.Millisecond, "the refusal", func() error {
		err := kube.Client.Create(ctx, credential("store-9"), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("got %v, want %q", err, want)
		}
		return nil
	})
	if err := kube.Client.Create(ctx, credential("store-1042")); err != nil {
		t.Errorf("a bound store refused: %v", err)
	}
}
