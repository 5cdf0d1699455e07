// Package chart_test checks the Helm chart as a user installs it: helm lint
// passes, and what helm template renders is accepted by a real API server
// (server-side dry-run apply against envtest).
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

func helm(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := helmRun(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// helmRun runs helm in the repository root; it fails the test only when
// helm cannot be found.
func helmRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, err := testbed.Tool("helm", "HELM_BIN")
	if err != nil {
		t.Fatal(err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestHelmLint(t *testing.T) {
	out := helm(t, "lint", filepath.Join("charts", "integration-operator"), "--strict")
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Fatalf("helm lint:\n%s", out)
	}
}

// TestKustomizeConfigIsAcceptedByTheAPIServer keeps config/ usable for
// those who prefer kustomize to the chart.
func TestKustomizeConfigIsAcceptedByTheAPIServer(t *testing.T) {
	kube := testbed.Start(t, testbed.Needs{Kube: true}).Kube
	out := kustomizeDefault(t)
	ctx := context.Background()
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "integration-operator"}}); err != nil {
		t.Fatal(err)
	}
	kinds := applyDryRun(t, kube, out, "")
	for kind, want := range map[string]int{"CustomResourceDefinition": 3, "Deployment": 3, "Service": 2, "ClusterRole": 1,
		"ServiceAccount": 3} {
		if kinds[kind] != want {
			t.Errorf("%d %s, want %d (all: %v)", kinds[kind], kind, want, kinds)
		}
	}
}

// kustomizeDefault renders config/default as kubectl apply -k would.
func kustomizeDefault(t *testing.T) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(root, "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	return string(out)
}

func TestRenderedChartIsAcceptedByTheAPIServer(t *testing.T) {
	kube := testbed.Start(t, testbed.Needs{Kube: true}).Kube
	ctx := context.Background()
	const ns = "integrations"
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string][]string{
		"defaults": nil,
		"everything on": {"--set", "networkPolicy.enabled=true", "--set", "networkPolicy.gatewayNamespaceSelector.matchLabels.team=gateway",
			"--set", "networkPolicy.gatewayPodSelector.matchLabels.app=nginx", "--set", "networkPolicy.metricsNamespaceSelector.matchLabels.team=monitoring",
			"--set", "kafka.tls.enabled=true",
			"--set", "kafka.tls.caConfigMap=kafka-ca", "--set", "kafka.sasl.mechanism=SCRAM-SHA-512",
			"--set", "kafka.sasl.existingSecret=kafka-user", "--set", "credentialsApi.tokenSigningSecret=signing", "--set", "credentialsApi.stream.enabled=true",
			"--set", "dispatcher.allowNetworks={10.0.0.0/8,192.168.0.0/16}", "--set", "dispatcher.destinationCA.secretName=broker-ca", "--set", "vault.authMethod=token",
			"--set", "vault.tokenSecret.name=vault-token", "--set", "dispatcher.inbound.ingress.enabled=true",
			"--set", "dispatcher.inbound.ingress.tlsSecretName=webhooks-tls", "--set", "dispatcher.inbound.ingress.className=nginx",
			"--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.folder=Integrations",
			"--set", "tracing.otlpEndpoint=http://otel-collector.observability:4317", "--set", "tracing.sampler=parentbased_traceidratio",
			"--set", "tracing.samplerArg=0.25"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"template", "io", filepath.Join("charts", "integration-operator"), "--namespace", ns, "--include-crds"}, extra...)
			kinds := applyDryRun(t, kube, helm(t, args...), ns)
			// The delivery API adds a Deployment, Service, APIService and
			// ServiceAccount, its own ClusterRole and two bindings to the
			// cluster's auth roles, and the two roles aggregated for users.
			for kind, want := range map[string]int{"CustomResourceDefinition": 3, "Deployment": 4, "Service": 4, "ClusterRole": 4,
				"ClusterRoleBinding": 3, "Role": 1, "RoleBinding": 2, "ServiceAccount": 4, "PodDisruptionBudget": 3, "APIService": 1} {
				if kinds[kind] != want {
					t.Errorf("%d %s rendered, want %d (all: %v)", kinds[kind], kind, want, kinds)
				}
			}
			if name == "everything on" && kinds["NetworkPolicy"] != 1 {
				t.Errorf("networkPolicy.enabled rendered no NetworkPolicy")
			}
			if name == "everything on" && kinds["Ingress"] != 1 {
				t.Errorf("dispatcher.inbound.ingress.enabled rendered no Ingress")
			}
			if name == "everything on" && kinds["ConfigMap"] != 1 {
				t.Errorf("grafanaDashboard.enabled rendered %d ConfigMaps, want the dashboard's", kinds["ConfigMap"])
			}
		})
	}
}

// applyDryRun server-side applies every object of a YAML stream with
// dry-run, placing namespaced objects without a namespace in ns, and counts
// them by kind.
func applyDryRun(t *testing.T, kube *testbed.Kube, stream, ns string) map[string]int {
	t.Helper()
	kinds := map[string]int{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if ns != "" && obj.GetNamespace() == "" && obj.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(obj.GetKind(), "Cluster") {
			obj.SetNamespace(ns)
		}
		err := kube.Client.Patch(context.Background(), obj, client.Apply, client.DryRunAll, client.FieldOwner("chart-test"), client.ForceOwnership)
		if err != nil {
			t.Errorf("%s %s refused: %v", obj.GetKind(), obj.GetName(), err)
		}
		kinds[obj.GetKind()]++
	}
	return kinds
}
