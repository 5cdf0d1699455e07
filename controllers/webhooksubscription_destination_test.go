package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/store"
)

const (
	testKeyID     = "AKIAIOSFODNN7EXAMPLE"
	testSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func sqsSubscription(namespace, name string) *integrationsv1.WebhookSubscription {
	sub := newSubscription(namespace, name)
	sub.Spec.TargetURL = ""
	sub.Spec.Destination = &integrationsv1.Destination{SQS: &integrationsv1.SQSDestination{
		Region: "eu-west-1", QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo",
		CredentialsSecretRef: integrationsv1.SQSCredentialsReference{Name: name + "-aws"}}}
	return sub
}

func TestSQSDestinationCredentialsGoToVaultMaskedEverywhereElse(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	sub := sqsSubscription(h.namespace, "sqs")
	if err := h.client.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	// No Secret yet: not Ready, saying which Secret is missing.
	h.waitCondition(t, "sqs", controllers.ConditionDestinationCredentialsSynced, metav1.ConditionFalse, controllers.ReasonSecretRefNotFound)
	if err := h.client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.namespace, Name: "sqs-aws"},
		StringData: map[string]string{"access-key-id": testKeyID, "secret-access-key": testSecretKey}}); err != nil {
		t.Fatal(err)
	}
	sub = h.waitReady(t, "sqs")
	id := uuid.MustParse(string(sub.UID))
	data, _, err := h.vault.Get(ctx, "webhook/"+id.String()+"/destination")
	if err != nil || data[destinations.FieldAccessKeyID] != testKeyID || data[destinations.FieldSecretAccessKey] != testSecretKey {
		t.Fatalf("credentials in Vault: %v", err)
	}
	c := meta.FindStatusCondition(sub.Status.Conditions, controllers.ConditionDestinationCredentialsSynced)
	if !strings.Contains(c.Message, "****MPLE") {
		t.Errorf("the condition should show the access key masked to its last four: %q", c.Message)
	}
	if sub.Status.TargetURL != sub.Spec.Destination.SQS.QueueURL {
		t.Errorf("status.targetURL = %q, want the queue URL", sub.Status.TargetURL)
	}
	row, ok, err := h.store.GetSubscription(ctx, id)
	if err != nil || !ok || row.Destination == nil || row.Destination.SQS == nil || row.Destination.SQS.QueueURL != sub.Spec.Destination.SQS.QueueURL {
		t.Fatalf("row destination: %+v %v %v", row.Destination, ok, err)
	}

	// The dispatcher cannot reach the queue: the status says since when.
	reporter := &controllers.StatusReporter{Client: h.client, Store: h.store, Recorder: h.recorder, Log: logr.Discard()}
	if err := h.store.RecordOutcomesAndStats(ctx, nil, []store.StatsDelta{{SubscriptionID: id,
		LastError: "the broker could not be reached: dial tcp: connection refused", DestinationDown: store.DestinationUnreachable}}); err != nil {
		t.Fatal(err)
	}
	if err := reporter.ReportDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	sub = h.waitCondition(t, "sqs", controllers.ConditionHealthy, metav1.ConditionFalse, controllers.ReasonDestinationUnreachable)
	if c := meta.FindStatusCondition(sub.Status.Conditions, controllers.ConditionHealthy); !strings.Contains(c.Message, "unreachable since") ||
		!strings.Contains(c.Message, "connection refused") {
		t.Errorf("Healthy should say since when and why the queue is unreachable: %q", c.Message)
	}

	// The dispatcher reaches it and finds the key refused: the status says so.
	refused := destinations.CredentialsRejectedPrefix + ": InvalidClientTokenId: The security token included in the request is invalid."
	if err := h.store.RecordOutcomesAndStats(ctx, nil, []store.StatsDelta{{SubscriptionID: id, FailedAttempts: 2, TrailingFailures: 2,
		LastAttemptAt: time.Now(), LastError: refused}}); err != nil {
		t.Fatal(err)
	}
	if err := reporter.ReportDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	sub = h.waitCondition(t, "sqs", controllers.ConditionHealthy, metav1.ConditionFalse, controllers.ReasonDestinationCredentialsRejected)

	// Nothing shows the secret access key, nor the whole key id.
	shown := fmt.Sprintf("%+v", sub.Status)
	if strings.Contains(shown, testSecretKey) || strings.Contains(shown, testKeyID) || strings.Contains(h.logs.String(), testSecretKey) {
		t.Fatal("a credential reached the status or the logs")
	}

	// Deleting the subscription removes the credentials from Vault.
	if err := h.client.Delete(ctx, sub); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "credentials removed from Vault", func() error {
		if _, _, err := h.vault.Get(ctx, "webhook/"+id.String()+"/destination"); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

func TestSTOMPDestinationWithoutLoginIsReady(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	sub := newSubscription(h.namespace, "stomp")
	sub.Spec.TargetURL = ""
	sub.Spec.Destination = &integrationsv1.Destination{STOMP: &integrationsv1.STOMPDestination{
		Address: "broker.example:61613", Destination: "/queue/orders", Headers: map[string]string{"x-team": "erp"}}}
	if err := h.client.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	sub = h.waitReady(t, "stomp")
	if sub.Status.TargetURL != "stomp://broker.example:61613/queue/orders" {
		t.Errorf("status.targetURL = %q", sub.Status.TargetURL)
	}
	if meta.FindStatusCondition(sub.Status.Conditions, controllers.ConditionDestinationCredentialsSynced) != nil {
		t.Error("a destination without a login needs no credentials condition")
	}
	row, ok, err := h.store.GetSubscription(ctx, uuid.MustParse(string(sub.UID)))
	if err != nil || !ok || row.Destination == nil || row.Destination.STOMP == nil || row.Destination.STOMP.Headers["x-team"] != "erp" {
		t.Fatalf("row destination: %+v %v %v", row.Destination, ok, err)
	}
}
