package v1_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// kube is one control plane shared by every test in this package: the tests
// only create objects, each under its own name.
var kube *testbed.Kube

func TestMain(m *testing.M) {
	var err error
	if kube, err = testbed.StartKube(); err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		os.Exit(1)
	}
	code := m.Run()
	kube.Close()
	os.Exit(code)
}

func TestSamplesApplyAndGetDefaults(t *testing.T) {
	ctx := context.Background()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	samples, err := filepath.Glob(filepath.Join(root, "config", "samples", "integrations_v1_*.yaml"))
	if err != nil || len(samples) != 5 {
		t.Fatalf("want a sample per kind and per queue destination, found %v (%v)", samples, err)
	}
	for _, path := range samples {
		obj := readObject(t, path)
		obj.SetNamespace("default")
		if err := kube.Client.Create(ctx, obj); err != nil {
			t.Fatalf("sample %s refused: %v", filepath.Base(path), err)
		}
	}

	var sub integrationsv1.WebhookSubscription
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "acme-erp-orders"}, &sub); err != nil {
		t.Fatal(err)
	}
	if !sub.Spec.IsActive() || sub.Spec.Active == nil {
		t.Errorf("active should default to true, got %v", sub.Spec.Active)
	}
	if sub.Spec.DeliveryTimeout == nil || sub.Spec.DeliveryTimeout.Duration != 15*time.Second {
		t.Errorf("deliveryTimeout from the sample: got %v", sub.Spec.DeliveryTimeout)
	}

	var conn integrationsv1.ConnectorConfig
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "amazon-eu"}, &conn); err != nil {
		t.Fatal(err)
	}
	if conn.Spec.CredentialsSecretRef.APIKeyKey != "api-key" || conn.Spec.CredentialsSecretRef.APISecretKey != "api-secret" {
		t.Errorf("credential keys should default, got %+v", conn.Spec.CredentialsSecretRef)
	}
	if v := conn.Spec.Settings["marketplaceId"]; string(v.Raw) != `"A1PA6795UKMFR9"` {
		t.Errorf("free-form settings should be kept, got %s", v.Raw)
	}

	// Defaults for a minimal subscription.
	minimal := &integrationsv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Name: "minimal", Namespace: "default"},
		Spec: integrationsv1.WebhookSubscriptionSpec{
			StoreID: "s1", DisplayName: "d", TargetURL: "https://example.com/h",
			Events: []integrationsv1.EventType{"order.placed"},
		},
	}
	if err := kube.Client.Create(ctx, minimal); err != nil {
		t.Fatal(err)
	}
	if minimal.Spec.DeliveryTimeout == nil || minimal.Spec.DeliveryTimeout.Duration != 30*time.Second {
		t.Errorf("deliveryTimeout should default to 30s, got %v", minimal.Spec.DeliveryTimeout)
	}
}

type invalidCase struct {
	name string
	yaml string
	// want are substrings the API server's refusal must contain.
	want []string
}

func TestInvalidWebhookSubscriptionsAreRefused(t *testing.T) {
	valid := `apiVersion: integrations.ss3.dev/v1
kind: WebhookSubscription
metadata: {name: NAME, namespace: default}
spec:
  storeId: store-1
  displayName: Orders
  targetURL: https://example.com/hooks
  events: [order.placed]
`
	cases := []invalidCase{
		{"plain http", strings.Replace(valid, "https://", "http://", 1),
			[]string{"targetURL must use https://"}},
		{"not a url", strings.Replace(valid, "https://example.com/hooks", "https://", 1),
			[]string{"targetURL must be an absolute URL with a host"}},
		{"no events", strings.Replace(valid, "events: [order.placed]", "events: []", 1),
			[]string{"spec.events", "should have at least 1 items"}},
		{"bad event type", strings.Replace(valid, "[order.placed]", "[Order-Placed]", 1),
			[]string{"spec.events[0]", "event type must be an exact type like 'order.placed' or a resource wildcard like 'order.*'"}},
		{"wildcard in the middle", strings.Replace(valid, "[order.placed]", "['*.placed']", 1),
			[]string{"spec.events[0]", "event type must be an exact type"}},
		{"duplicate events", strings.Replace(valid, "[order.placed]", "[order.placed, order.placed]", 1),
			[]string{"spec.events[1]", "Duplicate value"}},
		{"missing store", strings.Replace(valid, "  storeId: store-1\n", "", 1),
			[]string{"spec.storeId", "Required value"}},
		{"bad store id", strings.Replace(valid, "store-1", "store 1/x", 1),
			[]string{"spec.storeId", "storeId may contain only letters, digits"}},
		{"timeout too long", valid + "  deliveryTimeout: 10m\n",
			[]string{"deliveryTimeout must be between 1s and 120s"}},
		{"timeout not a duration", valid + "  deliveryTimeout: soon\n",
			[]string{"spec.deliveryTimeout"}},
		{"secret ref without name", valid + "  signingSecretRef: {key: s}\n",
			[]string{"spec.signingSecretRef.name", "Required value"}},
	}
	runInvalid(t, kube, cases)

	// plain http is allowed where the field says so.
	allowed := readYAML(t, strings.Replace(valid, "https://", "http://", 1)+"  allowInsecureHTTP: true\n")
	allowed.SetName("insecure-allowed")
	if err := kube.Client.Create(context.Background(), allowed); err != nil {
		t.Fatalf("http with allowInsecureHTTP should be accepted: %v", err)
	}
}

func TestQueueDestinationsAreValidated(t *testing.T) {
	head := `apiVersion: integrations.ss3.dev/v1
kind: WebhookSubscription
metadata: {name: NAME, namespace: default}
spec:
  storeId: store-1
  displayName: Orders
  events: [order.placed]
  destination:
`
	sqs := head + `    sqs:
      region: eu-west-1
      queueURL: https://sqs.eu-west-1.amazonaws.com/123456789012/orders
      credentialsSecretRef: {name: aws}
`
	stomp := head + `    stomp:
      address: broker.example:61613
      destination: /queue/orders
`
	const both = "set exactly one of targetURL (an HTTP endpoint) or destination"
	cases := []invalidCase{
		{"neither target nor destination", strings.Replace(sqs, "  destination:\n    sqs:", "  x:\n    sqs:", 1), []string{both}},
		{"target and destination", sqs + "  targetURL: https://example.com/hooks\n", []string{both}},
		{"sqs and stomp", sqs + "    stomp: {address: 'b:1', destination: /queue/x}\n", []string{"destination takes exactly one of sqs or stomp"}},
		{"bad region", strings.Replace(sqs, "eu-west-1\n", "Europe\n", 1), []string{"region must be an AWS region"}},
		{"plain http queue", strings.Replace(sqs, "https://sqs", "http://sqs", 1), []string{"queueURL must use https://"}},
		{"credentials in the queue url", strings.Replace(sqs, "https://sqs", "https://AKIA:s3cret@sqs", 1), []string{"queueURL must not contain credentials"}},
		{"no credentials secret", strings.Replace(sqs, "      credentialsSecretRef: {name: aws}\n", "", 1),
			[]string{"spec.destination.sqs.credentialsSecretRef", "Required value"}},
		{"bad broker address", strings.Replace(stomp, "broker.example:61613", "broker example", 1), []string{"address must be host:port"}},
		{"reserved header", stomp + "      headers: {receipt: x}\n", []string{"headers cannot set destination"}},
		{"our header", stomp + "      headers: {X-SS3-Signature: x}\n", []string{"headers cannot set destination"}},
	}
	runInvalid(t, kube, cases)

	for name, doc := range map[string]string{"sqs-ok": sqs, "stomp-ok": stomp + "      headers: {x-team: erp}\n"} {
		obj := readYAML(t, doc)
		obj.SetName(name)
		if err := kube.Client.Create(context.Background(), obj); err != nil {
			t.Errorf("%s should be accepted: %v", name, err)
		}
	}
}

func TestInvalidApiCredentialsAreRefused(t *testing.T) {
	valid := `apiVersion: integrations.ss3.dev/v1
kind: ApiCredential
metadata: {name: NAME, namespace: default}
spec:
  storeId: store-1
  type: ApiKey
  scopes: [orders:read]
  secretName: my-key
`
	cases := []invalidCase{
		{"unknown type", strings.Replace(valid, "ApiKey", "Password", 1),
			[]string{"spec.type", `Unsupported value: "Password"`, `"ApiKey"`, `"OAuthClient"`}},
		{"unknown scope", strings.Replace(valid, "[orders:read]", "[orders:delete]", 1),
			[]string{"spec.scopes[0]", `Unsupported value: "orders:delete"`, `"webhooks:manage"`}},
		{"no scopes", strings.Replace(valid, "[orders:read]", "[]", 1),
			[]string{"spec.scopes", "should have at least 1 items"}},
		{"bad secret name", strings.Replace(valid, "my-key", "My_Key", 1),
			[]string{"secretName must be a valid Secret name"}},
		{"missing secret name", strings.Replace(valid, "  secretName: my-key\n", "", 1),
			[]string{"spec.secretName", "Required value"}},
		{"bad expiry", valid + "  expiresAt: next-year\n",
			[]string{"spec.expiresAt"}},
		{"duplicate scopes", strings.Replace(valid, "[orders:read]", "[orders:read, orders:read]", 1),
			[]string{"spec.scopes[1]", "Duplicate value"}},
	}
	runInvalid(t, kube, cases)

	// Immutable fields.
	ctx := context.Background()
	obj := readYAML(t, valid)
	obj.SetName("immutable")
	if err := kube.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	for field, value := range map[string]string{"secretName": "other", "type": "OAuthClient", "storeId": "store-2"} {
		changed := obj.DeepCopy()
		if err := unstructured.SetNestedField(changed.Object, value, "spec", field); err != nil {
			t.Fatal(err)
		}
		err := kube.Client.Update(ctx, changed)
		if err == nil || !strings.Contains(err.Error(), field+" cannot be changed") {
			t.Errorf("changing %s: got %v, want a refusal saying it cannot be changed", field, err)
		}
	}
}

func TestInvalidConnectorConfigsAreRefused(t *testing.T) {
	valid := `apiVersion: integrations.ss3.dev/v1
kind: ConnectorConfig
metadata: {name: NAME, namespace: default}
spec:
  storeId: store-1
  connectorType: ebay
  displayName: eBay UK
  credentialsSecretRef: {name: ebay-creds}
`
	cases := []invalidCase{
		{"unknown connector", strings.Replace(valid, "ebay\n", "etsy\n", 1),
			[]string{"spec.connectorType", `Unsupported value: "etsy"`, `"amazon"`, `"google-shopping"`}},
		{"settings not an object", valid + "  settings: [1, 2]\n",
			[]string{"spec.settings", "must be of type object"}},
		{"poll too often", valid + "  pollInterval: 5s\n",
			[]string{"pollInterval must be between 30s and 24h"}},
		{"missing credentials", strings.Replace(valid, "  credentialsSecretRef: {name: ebay-creds}\n", "", 1),
			[]string{"spec.credentialsSecretRef", "Required value"}},
		{"bad event subscription", valid + "  eventSubscriptions: [product]\n",
			[]string{"spec.eventSubscriptions[0]", "event type must be an exact type"}},
		{"empty display name", strings.Replace(valid, "eBay UK", `""`, 1),
			[]string{"spec.displayName", "should be at least 1 chars long"}},
	}
	runInvalid(t, kube, cases)

	ctx := context.Background()
	obj := readYAML(t, valid)
	obj.SetName("immutable")
	if err := kube.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	changed := obj.DeepCopy()
	_ = unstructured.SetNestedField(changed.Object, "amazon", "spec", "connectorType")
	if err := kube.Client.Update(ctx, changed); err == nil || !strings.Contains(err.Error(), "connectorType cannot be changed") {
		t.Errorf("changing connectorType: got %v", err)
	}
}

func TestKubectlExplainShowsFieldDocs(t *testing.T) {
	kubeconfig, err := kube.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl not found (hack/install-system-deps.sh installs it): %v", err)
	}
	// The API server publishes CRD schemas asynchronously; allow it a moment.
	var out []byte
	testbed.Eventually(t, 30*time.Second, 500*time.Millisecond, "kubectl explain", func() error {
		out, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "explain", "webhooksubscription.spec.targetURL").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	if !strings.Contains(string(out), "endpoint that receives an HTTP POST per event") {
		t.Fatalf("kubectl explain lacks the field doc:\n%s", out)
	}
	out, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "whsub,apicred,conncfg", "-A").CombinedOutput()
	if err != nil {
		t.Fatalf("short names: %v: %s", err, out)
	}
}

func runInvalid(t *testing.T, kube *testbed.Kube, cases []invalidCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := readYAML(t, tc.yaml)
			obj.SetName("invalid-" + string(rune('a'+i)))
			err := kube.Client.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("accepted, want a refusal containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readYAML(t, string(data))
}

func readYAML(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("parse yaml: %v", err)
	}
	return obj
}
