package chart_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// TestEachComponentHoldsOnlyItsOwnRights applies the ServiceAccounts and
// RBAC that the chart and config/default render to a real API server and
// asks it (SubjectAccessReview) what each component may do; their pods
// must mount only their own tokens.
func TestEachComponentHoldsOnlyItsOwnRights(t *testing.T) {
	kube := testbed.Start(t, testbed.Needs{Kube: true}).Kube
	chart := filepath.Join("charts", "integration-operator")
	for _, install := range []struct {
		name, namespace, prefix, stream string
		// clientTokenReview: the dispatcher and manager may review tokens (for
		// a Vault without a reviewer token of its own).
		clientTokenReview bool
	}{
		{"chart", "lp-chart", "io-", helm(t, "template", "io", chart, "--namespace", "lp-chart"), false},
		{"chart with clientTokenReview", "lp-review", "rv-",
			helm(t, "template", "rv", chart, "--namespace", "lp-review", "--set", "vault.clientTokenReview=true"), true},
		{"config/default", "integration-operator", "integration-operator-", kustomizeDefault(t), false},
	} {
		t.Run(install.name, func(t *testing.T) {
			objs := decodeAll(t, install.stream)
			ctx := context.Background()
			if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: install.namespace}}); err != nil {
				t.Fatal(err)
			}
			for _, obj := range objs {
				switch obj.GetKind() {
				case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
					if obj.GetNamespace() == "" && !strings.HasPrefix(obj.GetKind(), "Cluster") {
						obj.SetNamespace(install.namespace)
					}
					if err := kube.Client.Create(ctx, obj); err != nil {
						t.Fatalf("create %s %s: %v", obj.GetKind(), obj.GetName(), err)
					}
				}
			}
			may := func(component, verb, group, resource, namespace string) bool {
				t.Helper()
				sa := install.prefix + component
				review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   "system:serviceaccount:" + install.namespace + ":" + sa,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + install.namespace, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: namespace, Verb: verb, Group: group, Resource: resource},
				}}
				if err := kube.Client.Create(ctx, review); err != nil {
					t.Fatal(err)
				}
				return review.Status.Allowed
			}

			// The API server's RBAC authorizer learns of the bindings just
			// created through its informers: wait until it has, or the first
			// review below may be answered from before they existed.
			for deadline := time.Now().Add(10 * time.Second); !may("manager", "get", "", "secrets", "default") && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			for _, verb := range []string{"get", "list", "watch", "create", "update", "patch"} {
				if !may("manager", verb, "", "secrets", "default") {
					t.Errorf("the manager may not %s Secrets, which it needs", verb)
				}
			}
			for _, verb := range []string{"delete", "deletecollection"} {
				if may("manager", verb, "", "secrets", "default") {
					t.Errorf("the manager may %s Secrets: owner references remove its own", verb)
				}
			}
			if !may("manager", "create", "coordination.k8s.io", "leases", install.namespace) {
				t.Error("the manager may not take the leader election lease")
			}
			for _, component := range []string{"dispatcher", "credentials-api"} {
				for _, ns := range []string{"default", install.namespace} {
					for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
						if may(component, verb, "", "secrets", ns) {
							t.Errorf("the %s may %s Secrets in %s", component, verb, ns)
						}
					}
					for _, r := range [][2]string{{"", "configmaps"}, {"", "pods"}, {"integrations.ss3.dev", "webhooksubscriptions"},
						{"integrations.ss3.dev", "connectorconfigs"}, {"events.k8s.io", "events"}} {
						if may(component, "get", r[0], r[1], ns) || may(component, "create", r[0], r[1], ns) {
							t.Errorf("the %s may use %s in %s: it needs no Kubernetes API", component, r[1], ns)
						}
					}
				}
			}
			for component, want := range map[string]bool{"dispatcher": install.clientTokenReview, "manager": install.clientTokenReview, "credentials-api": false} {
				if got := may(component, "create", "authentication.k8s.io", "tokenreviews", ""); got != want {
					t.Errorf("the %s may review tokens: %v, want %v", component, got, want)
				}
			}

			// The delivery API (chart only: its APIService's name and its
			// kube-system binding are fixed, which config/default's prefix and
			// namespace would rewrite) reads the owners of deliveries and
			// delegates its users' authentication and authorization.
			components := []string{"manager", "dispatcher", "credentials-api"}
			if install.name != "config/default" {
				components = append(components, "delivery-api")
				checkDeliveryAPIRights(t, may)
			}

			pods := podsByComponent(t, objs)
			for _, component := range components {
				pod, ok := pods[component]
				if !ok {
					t.Fatalf("no %s Deployment rendered", component)
				}
				if pod.ServiceAccountName != install.prefix+component {
					t.Errorf("the %s runs as %q, want its own %q", component, pod.ServiceAccountName, install.prefix+component)
				}
				if component != "manager" && component != "delivery-api" && (pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken) {
					t.Errorf("the %s mounts an API token", component)
				}
				projected := 0
				for _, v := range pod.Volumes {
					for _, src := range projectedSources(v) {
						if src.ServiceAccountToken != nil {
							projected++
							if src.ServiceAccountToken.Audience != "vault" {
								t.Errorf("the %s projects a token for %q, want Vault's audience only", component, src.ServiceAccountToken.Audience)
							}
						}
					}
				}
				if want := map[string]int{"manager": 1, "dispatcher": 1, "credentials-api": 0, "delivery-api": 0}[component]; projected != want {
					t.Errorf("the %s projects %d tokens, want %d", component, projected, want)
				}
			}
		})
	}
}

func checkDeliveryAPIRights(t *testing.T, may func(component, verb, group, resource, namespace string) bool) {
	t.Helper()
	for _, r := range [][3]string{{"get", "integrations.ss3.dev", "webhooksubscriptions"}, {"watch", "integrations.ss3.dev", "connectorconfigs"},
		{"create", "authorization.k8s.io", "subjectaccessreviews"}, {"create", "authentication.k8s.io", "tokenreviews"}} {
		if !may("delivery-api", r[0], r[1], r[2], "") {
			t.Errorf("the delivery API may not %s %s, which it needs", r[0], r[2])
		}
	}
	for _, r := range [][3]string{{"get", "", "secrets"}, {"update", "integrations.ss3.dev", "webhooksubscriptions"},
		{"patch", "integrations.ss3.dev", "webhooksubscriptions"}, {"create", "events.k8s.io", "events"}, {"list", "", "configmaps"}} {
		if may("delivery-api", r[0], r[1], r[2], "default") {
			t.Errorf("the delivery API may %s %s", r[0], r[2])
		}
	}
}

func projectedSources(v corev1.Volume) []corev1.VolumeProjection {
	if v.Projected == nil {
		return nil
	}
	return v.Projected.Sources
}

// decodeAll splits a YAML stream into its objects.
func decodeAll(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// podsByComponent returns the pod template of each Deployment by its
// app.kubernetes.io/component label.
func podsByComponent(t *testing.T, objs []*unstructured.Unstructured) map[string]corev1.PodSpec {
	t.Helper()
	pods := map[string]corev1.PodSpec{}
	for _, obj := range objs {
		if obj.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
			t.Fatal(err)
		}
		pods[d.Spec.Template.Labels["app.kubernetes.io/component"]] = d.Spec.Template.Spec
	}
	return pods
}
