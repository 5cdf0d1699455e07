package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

func (h *harness) waitConnector(t *testing.T, name, condType string, status metav1.ConditionStatus, reason string) *integrationsv1.ConnectorConfig {
	t.Helper()
	var cc integrationsv1.ConnectorConfig
	eventually(t, 30*time.Second, fmt.Sprintf("%s %s=%s/%s", name, condType, status, reason), func() error {
		if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: h.namespace, Name: name}, &cc); err != nil {
			return err
		}
		c := meta.FindStatusCondition(cc.Status.Conditions, condType)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != cc.Generation {
			return fmt.Errorf("condition is %+v", c)
		}
		return nil
	})
	return &cc
}

func TestConnectorConfigRowAndCredentials(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	cc := &integrationsv1.ConnectorConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "amazon-eu", Namespace: h.namespace},
		Spec: integrationsv1.ConnectorConfigSpec{
			StoreID: "store-1042", ConnectorType: integrationsv1.ConnectorAmazon, DisplayName: "Amazon EU",
			EventSubscriptions: []integrationsv1.EventType{"product.updated", "inventory.updated"},
			Settings: map[string]apiextensionsv1.JSON{"marketplaceId": {Raw: []byte(`"A1PA6795UKMFR9"`)},
				"sellerId": {Raw: []byte(`"A2SELLER"`)}},
			CredentialsSecretRef: integrationsv1.ConnectorCredentialsReference{Name: "amazon-creds"},
		},
	}
	if err := h.client.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	h.waitConnector(t, "amazon-eu", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonCredentialsNotFound)

	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "amazon-creds", Namespace: h.namespace},
		Data: map[string][]byte{"api-key": []byte("lwa-client-id"), "api-secret": []byte("lwa-client-secret-1")}}
	if err := h.client.Create(ctx, creds); err != nil {
		t.Fatal(err)
	}
	// Amazon also needs the seller's refresh token.
	cc = h.waitConnector(t, "amazon-eu", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonCredentialsKeyMissing)
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionCredentialsSynced); !strings.Contains(c.Message, `"refresh-token"`) {
		t.Errorf("the condition should name the missing key: %q", c.Message)
	}
	update(t, creds, func() { creds.Data["refresh-token"] = []byte("Atzr|seller-refresh") })
	cc = h.waitConnector(t, "amazon-eu", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	id := uuid.MustParse(string(cc.UID))
	if cc.Status.ConfigID != id.String() {
		t.Errorf("status.configId = %q", cc.Status.ConfigID)
	}
	row, ok, err := h.store.GetConnectorConfig(ctx, id)
	if err != nil || !ok || row.ConnectorType != "amazon" || !row.IsActive || strings.Join(row.EventSubscriptions, ",") != "inventory.updated,product.updated" ||
		!strings.Contains(string(row.Settings), "A1PA6795UKMFR9") {
		t.Fatalf("row: %+v %v %v", row, ok, err)
	}
	if strings.Contains(string(row.Settings), "lwa-client") {
		t.Fatal("credentials leaked into the row")
	}
	read := func(leaf string) string {
		data, _, err := h.vault.Get(ctx, "connector/"+id.String()+"/"+leaf)
		if err != nil {
			return "error: " + err.Error()
		}
		return data["value"]
	}
	if read("api-key") != "lwa-client-id" || read("api-secret") != "lwa-client-secret-1" || read("refresh-token") != "Atzr|seller-refresh" {
		t.Fatal("credentials not at the design's Vault paths")
	}

	// The Secret changes: Vault follows.
	update(t, creds, func() { creds.Data["api-secret"] = []byte("lwa-client-secret-2") })
	eventually(t, 30*time.Second, "Vault follows the Secret", func() error {
		if got := read("api-secret"); got != "lwa-client-secret-2" {
			return fmt.Errorf("api-secret is %q", got)
		}
		return nil
	})

	// Settings the adapter does not know, and events it cannot handle, are refused with the reason.
	update(t, cc, func() {
		cc.Spec.Settings["marketplace"] = apiextensionsv1.JSON{Raw: []byte(`"typo"`)}
	})
	cc = h.waitConnector(t, "amazon-eu", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSettingsRejected)
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionDatabaseSynced); !strings.Contains(c.Message, "settings.marketplace: is not a setting") {
		t.Errorf("the condition should name the unknown setting: %q", c.Message)
	}
	update(t, cc, func() {
		delete(cc.Spec.Settings, "marketplace")
		cc.Spec.EventSubscriptions = []integrationsv1.EventType{"product.updated", "customer.*"}
	})
	cc = h.waitConnector(t, "amazon-eu", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSettingsRejected)
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionDatabaseSynced); !strings.Contains(c.Message, "customer.*") {
		t.Errorf("the condition should name the unhandled subscription: %q", c.Message)
	}

	// A credential put in settings is refused, and the row keeps the last good settings.
	update(t, cc, func() {
		cc.Spec.Settings = map[string]apiextensionsv1.JSON{"region": {Raw: []byte(`"eu"`)}, "auth": {Raw: []byte(`{"refreshToken":"x"}`)}}
	})
	cc = h.waitConnector(t, "amazon-eu", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSettingsRejected)
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionDatabaseSynced); !strings.Contains(c.Message, "auth.refreshToken") {
		t.Errorf("the condition should name the key: %q", c.Message)
	}
	if row, _, _ := h.store.GetConnectorConfig(ctx, id); strings.Contains(string(row.Settings), "refreshToken") {
		t.Fatal("rejected settings reached the row")
	}

	// Deletion removes the credentials and deactivates the row.
	if err := h.client.Delete(ctx, cc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "object released", func() error {
		err := h.client.Get(ctx, client.ObjectKeyFromObject(cc), &integrationsv1.ConnectorConfig{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	for _, leaf := range []string{"api-key", "api-secret", "refresh-token"} {
		if _, _, err := h.vault.Get(ctx, "connector/"+id.String()+"/"+leaf); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("%s still in Vault: %v", leaf, err)
		}
	}
	if row, ok, _ := h.store.GetConnectorConfig(ctx, id); !ok || row.IsActive {
		t.Errorf("row should be kept, inactive: %v %v", ok, row.IsActive)
	}
}

func TestPaymentConnectorAndSyncStatus(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "stripe-endpoint", Namespace: h.namespace},
		Data: map[string][]byte{"api-secret": []byte("whsec_test_endpoint_secret")}}
	if err := h.client.Create(ctx, creds); err != nil {
		t.Fatal(err)
	}
	cc := &integrationsv1.ConnectorConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "stripe", Namespace: h.namespace},
		Spec: integrationsv1.ConnectorConfigSpec{StoreID: "store-1042", ConnectorType: integrationsv1.ConnectorStripe, DisplayName: "Stripe",
			CredentialsSecretRef: integrationsv1.ConnectorCredentialsReference{Name: "stripe-endpoint"}},
	}
	if err := h.client.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	// Stripe needs only the endpoint's signing secret.
	cc = h.waitConnector(t, "stripe", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	id := uuid.MustParse(string(cc.UID))
	if cc.Status.WebhookPath != "/connectors/"+id.String()+"/webhook" {
		t.Errorf("status.webhookPath = %q", cc.Status.WebhookPath)
	}
	if data, _, err := h.vault.Get(ctx, "connector/"+id.String()+"/api-secret"); err != nil || data["value"] != "whsec_test_endpoint_secret" {
		t.Fatalf("api-secret in Vault: %v", err)
	}

	// What the dispatcher records reaches the status.
	reporter := &controllers.StatusReporter{Client: h.client, Store: h.store, Recorder: h.recorder, Log: logr.Discard()}
	if err := h.store.RecordConnectorOutcomes(ctx, nil, []store.SyncRun{{ConfigID: id, Direction: store.SyncOutbound, EntityType: "product",
		RecordCount: 3, Status: store.SyncPartial, ErrorSummary: "1 of 4 failed: PUT answered 400", StartedAt: time.Now(), FinishedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := h.store.CountInboundRejected(ctx, id, "stripe: no v1 signature matches"); err != nil {
		t.Fatal(err)
	}
	if err := reporter.ReportConnectors(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(cc), cc); err != nil {
		t.Fatal(err)
	}
	ls := cc.Status.LastSync
	if ls == nil || ls.Direction != "OUTBOUND" || ls.EntityType != "product" || ls.RecordCount != 3 || ls.Status != "PARTIAL" ||
		!strings.Contains(ls.ErrorSummary, "400") || ls.Time.IsZero() {
		t.Fatalf("status.lastSync: %+v", ls)
	}
	if in := cc.Status.Inbound; in == nil || in.Rejected != 1 || in.LastRejectReason != "stripe: no v1 signature matches" || in.LastRejectedTime == nil {
		t.Fatalf("status.inbound: %+v", in)
	}
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionSynced); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != controllers.ReasonSyncPartial {
		t.Fatalf("Synced: %+v", c)
	}
	if r := meta.FindStatusCondition(cc.Status.Conditions, integrationsv1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
		t.Fatalf("the reporter must keep the reconciler's conditions: %+v", cc.Status.Conditions)
	}
	h.waitEvent(t, "stripe", "WebhooksRejected", "no v1 signature matches")
	// Syncs failing raise a Warning at once (not at the first dead letter),
	// and syncing again a Normal Event.
	h.waitEvent(t, "stripe", "SyncFailing", "PUT answered 400")
	if err := h.store.RecordConnectorOutcomes(ctx, nil, []store.SyncRun{{ConfigID: id, Direction: store.SyncOutbound, EntityType: "product",
		RecordCount: 4, Status: store.SyncSucceeded, StartedAt: time.Now(), FinishedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := reporter.ReportConnectors(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitEvent(t, "stripe", "SyncRecovered", "syncs succeed again")
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(cc), cc); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionSynced); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Synced after a successful sync: %+v", c)
	}
	// A dead-lettered marketplace event is re-queued by annotation.
	eventID := uuid.New()
	if err := h.store.InsertConnectorDeliveries(ctx, []store.NewConnectorDelivery{{ID: uuid.New(), ConfigID: id, EventID: eventID,
		StoreID: "store-1042", EventType: "product.updated", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	claimed, err := h.store.ClaimConnectorDeliveries(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if err := h.store.RecordConnectorOutcomes(ctx, []store.ConnectorOutcome{{DeliveryID: claimed[0].ID, ConfigID: id,
		Status: store.DeliveryDeadLettered, Attempts: 6, Error: "6 attempts failed", Attempted: true}}, nil); err != nil {
		t.Fatal(err)
	}
	update(t, cc, func() {
		if cc.Annotations == nil {
			cc.Annotations = map[string]string{}
		}
		cc.Annotations[integrationsv1.RetriggerDeadLettersAnnotation] = "fixed-the-listing"
	})
	eventually(t, 30*time.Second, "the dead-lettered event re-queued", func() error {
		status, attempts, _, err := h.store.ConnectorDeliveryStatus(ctx, id, eventID)
		if err != nil || status != store.DeliveryPending || attempts != 0 {
			return fmt.Errorf("%s after %d attempts, %v", status, attempts, err)
		}
		if err := h.client.Get(ctx, client.ObjectKeyFromObject(cc), cc); err != nil || cc.Status.LastRetrigger != "fixed-the-listing" {
			return fmt.Errorf("status.lastRetrigger %q, %v", cc.Status.LastRetrigger, err)
		}
		return nil
	})

	// The re-queued event shows as pending and no longer dead (the total keeps
	// it); then, nothing having changed, the next report writes nothing.
	if err := reporter.ReportConnectors(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(cc), cc); err != nil {
		t.Fatal(err)
	}
	if o := cc.Status.Outbound; o == nil || o.Pending != 1 || o.DeadLettered != 0 || o.DeadLetteredTotal != 1 {
		t.Errorf("status.outbound: %+v", o)
	}
	rv := cc.ResourceVersion
	if err := reporter.ReportConnectors(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(cc), cc); err != nil || cc.ResourceVersion != rv {
		t.Fatalf("an unchanged report wrote the object (%v)", err)
	}
}
