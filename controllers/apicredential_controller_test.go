package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/credentials"
)

func newCredential(namespace, name string, typ integrationsv1.CredentialType) *integrationsv1.ApiCredential {
	return &integrationsv1.ApiCredential{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: integrationsv1.ApiCredentialSpec{
			StoreID: "store-1042", Type: typ,
			Scopes:     []integrationsv1.Scope{integrationsv1.ScopeOrdersRead, integrationsv1.ScopeInventoryRead},
			SecretName: name + "-secret",
		},
	}
}

func (h *harness) getCredential(t *testing.T, name string) *integrationsv1.ApiCredential {
	t.Helper()
	var c integrationsv1.ApiCredential
	if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: h.namespace, Name: name}, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func (h *harness) waitCredential(t *testing.T, name, condType string, status metav1.ConditionStatus, reason string) *integrationsv1.ApiCredential {
	t.Helper()
	var c *integrationsv1.ApiCredential
	eventually(t, 30*time.Second, fmt.Sprintf("%s %s=%s/%s", name, condType, status, reason), func() error {
		c = h.getCredential(t, name)
		cond := meta.FindStatusCondition(c.Status.Conditions, condType)
		if cond == nil || cond.Status != status || cond.Reason != reason || cond.ObservedGeneration != c.Generation {
			return fmt.Errorf("condition is %+v", cond)
		}
		return nil
	})
	return c
}

func (h *harness) secretData(t *testing.T, name string) map[string][]byte {
	t.Helper()
	var s corev1.Secret
	if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: h.namespace, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return s.Data
}

// validator is a credentials API replica's validator over the test database.
func (h *harness) validator(t *testing.T) *credentials.Validator {
	t.Helper()
	m, err := credentials.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	v, err := credentials.NewValidator(h.store, credentials.ValidatorConfig{}, m, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { v.Listen(ctx); done <- struct{}{} }()
	go func() { v.FlushUsage(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	eventually(t, 10*time.Second, "validator listening", v.Ready)
	return v
}

func validAPIKey(t *testing.T, v *credentials.Validator, key string) (credentials.Principal, bool) {
	t.Helper()
	id, secret, ok := credentials.ParseAPIKey(key)
	if !ok {
		t.Fatalf("the delivered API key does not parse")
	}
	p, outcome, err := v.ValidateSecret(context.Background(), id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return p, outcome == credentials.OutcomeValid
}

func TestApiKeyIssuedOnceUsableRotatedRevoked(t *testing.T) {
	h := startManager(t, harnessOptions{})
	v := h.validator(t)
	ctx := context.Background()
	cred := newCredential(h.namespace, "warehouse", integrationsv1.CredentialTypeAPIKey)
	cred.Spec.RotationGracePeriod = &metav1.Duration{Duration: 3 * time.Second}
	if err := h.client.Create(ctx, cred); err != nil {
		t.Fatal(err)
	}
	cred = h.waitCredential(t, "warehouse", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	if !strings.HasPrefix(cred.Status.ClientID, "ss3_ak_") || cred.Status.CredentialID != string(cred.UID) || cred.Status.IssuedAt == nil {
		t.Fatalf("status: %+v", cred.Status)
	}
	if c := meta.FindStatusCondition(cred.Status.Conditions, controllers.ConditionExpired); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Expired condition: %+v", c)
	}
	data := h.secretData(t, "warehouse-secret")
	key := string(data[controllers.SecretKeyAPIKey])
	if string(data[controllers.SecretKeyClientID]) != cred.Status.ClientID || !strings.HasPrefix(key, cred.Status.ClientID+"_") {
		t.Fatal("the Secret does not hold the issued key")
	}
	// Issued with its fingerprint, so guesses at a key never used yet
	// cannot spend its holder's bcrypt budget; the validation below shows
	// it is the key's own (a wrong one would refuse the key).
	issuedRow, _, err := h.store.GetCredential(ctx, uuid.MustParse(string(cred.UID)))
	if err != nil || issuedRow.SecretFingerprint == "" {
		t.Fatalf("issued without a fingerprint (%v)", err)
	}
	p, ok := validAPIKey(t, v, key)
	if !ok || p.StoreID != "store-1042" || strings.Join(p.Scopes, ",") != "inventory:read,orders:read" {
		t.Fatalf("validate the issued key: %v %+v", ok, p)
	}
	assertPlainSecretOnlyInSecret(t, h, cred, key)

	// Spec changes follow into the row.
	expires := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	update(t, cred, func() {
		cred.Spec.Scopes = []integrationsv1.Scope{integrationsv1.ScopeCatalogRead}
		cred.Spec.ExpiresAt = &expires
	})
	eventually(t, 30*time.Second, "row follows", func() error {
		row, _, err := h.store.GetCredential(ctx, uuid.MustParse(string(cred.UID)))
		if err != nil {
			return err
		}
		if strings.Join(row.Scopes, ",") != "catalog:read" || row.ExpiresAt == nil || !row.ExpiresAt.Equal(expires.Time) {
			return fmt.Errorf("row %v %v", row.Scopes, row.ExpiresAt)
		}
		return nil
	})

	// Rotation: a new key in the Secret, the old one accepted for the grace period only.
	cred = h.getCredential(t, "warehouse")
	update(t, cred, func() {
		cred.Annotations = map[string]string{integrationsv1.RotateCredentialAnnotation: "1"}
	})
	var rotated string
	eventually(t, 30*time.Second, "rotated key delivered", func() error {
		rotated = string(h.secretData(t, "warehouse-secret")[controllers.SecretKeyAPIKey])
		if rotated == key {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	eventually(t, 30*time.Second, "status shows the rotation", func() error {
		cred = h.getCredential(t, "warehouse")
		if cred.Status.LastRotationRequest != "1" || cred.Status.PreviousSecretExpiresAt == nil {
			return fmt.Errorf("status %+v", cred.Status)
		}
		return nil
	})
	rotatedRow, _, err := h.store.GetCredential(ctx, uuid.MustParse(string(cred.UID)))
	if err != nil || rotatedRow.SecretFingerprint == "" || rotatedRow.SecretFingerprint == issuedRow.SecretFingerprint ||
		rotatedRow.PreviousSecretFingerprint != issuedRow.SecretFingerprint {
		t.Fatalf("the rotation did not move the fingerprints along (%v)", err)
	}
	if _, ok := validAPIKey(t, v, rotated); !ok {
		t.Fatal("the rotated key is refused")
	}
	if _, ok := validAPIKey(t, v, key); !ok {
		t.Fatal("the old key is refused during the grace period")
	}
	eventually(t, 10*time.Second, "old key refused after the grace period", func() error {
		if _, ok := validAPIKey(t, v, key); ok {
			return fmt.Errorf("still accepted")
		}
		return nil
	})

	// The Secret deleted: the key keeps working; the status says how to get it again.
	if err := h.client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "warehouse-secret", Namespace: h.namespace}}); err != nil {
		t.Fatal(err)
	}
	cred = h.waitCredential(t, "warehouse", controllers.ConditionSecretDelivered, metav1.ConditionFalse, controllers.ReasonPlainSecretDeleted)
	if c := meta.FindStatusCondition(cred.Status.Conditions, controllers.ConditionSecretDelivered); !strings.Contains(c.Message, "rotating") {
		t.Errorf("message should say to rotate: %q", c.Message)
	}
	if _, ok := validAPIKey(t, v, rotated); !ok {
		t.Fatal("deleting the Secret must not break the credential")
	}

	// Deactivate, then delete: refused, revoked, object gone.
	update(t, cred, func() {
		cred.Spec.Active = ptr.To(false)
	})
	eventually(t, 10*time.Second, "deactivated key refused", func() error {
		if _, ok := validAPIKey(t, v, rotated); ok {
			return fmt.Errorf("still accepted")
		}
		return nil
	})
	if err := h.client.Delete(ctx, cred); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "object released", func() error {
		err := h.client.Get(ctx, client.ObjectKeyFromObject(cred), &integrationsv1.ApiCredential{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	row, ok, err := h.store.GetCredential(ctx, uuid.MustParse(string(cred.UID)))
	if err != nil || !ok || row.RevokedAt == nil || row.IsActive {
		t.Fatalf("row should be kept, revoked: ok=%v %+v %v", ok, row.RevokedAt, err)
	}
}

func TestOAuthClientIssuedAndExpiry(t *testing.T) {
	h := startManager(t, harnessOptions{})
	v := h.validator(t)
	ctx := context.Background()
	cred := newCredential(h.namespace, "partner", integrationsv1.CredentialTypeOAuthClient)
	soon := metav1.NewTime(time.Now().Add(3 * time.Second).Truncate(time.Second))
	cred.Spec.ExpiresAt = &soon
	if err := h.client.Create(ctx, cred); err != nil {
		t.Fatal(err)
	}
	cred = h.waitCredential(t, "partner", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	data := h.secretData(t, "partner-secret")
	id, secret := string(data[controllers.SecretKeyClientID]), string(data[controllers.SecretKeyClientSecret])
	if !strings.HasPrefix(id, "ss3_oc_") || !credentials.ValidClientSecret(secret) || id != cred.Status.ClientID {
		t.Fatal("the Secret does not hold an OAuth client")
	}
	if _, outcome, err := v.ValidateSecret(ctx, id, secret); err != nil || outcome != credentials.OutcomeValid {
		t.Fatalf("validate the issued client: %v %v", outcome, err)
	}
	assertPlainSecretOnlyInSecret(t, h, cred, secret)

	cred = h.waitCredential(t, "partner", controllers.ConditionExpired, metav1.ConditionTrue, controllers.ReasonExpired)
	if c := meta.FindStatusCondition(cred.Status.Conditions, integrationsv1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonExpired {
		t.Errorf("an expired credential is not Ready: %+v", c)
	}
	// Expiry heals only by a change to the spec: kstatus Stalled, so Flux
	// and Argo CD report it failed rather than wait.
	if c := meta.FindStatusCondition(cred.Status.Conditions, integrationsv1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue ||
		c.Reason != controllers.ReasonExpired || c.ObservedGeneration != cred.Generation {
		t.Errorf("an expired credential should be Stalled (Expired): %+v", c)
	}
	if _, outcome, _ := v.ValidateSecret(ctx, id, secret); outcome == credentials.OutcomeValid {
		t.Fatal("an expired credential is accepted")
	}

	// Moving the expiry out is that change.
	later := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	patch := client.MergeFrom(cred.DeepCopy())
	cred.Spec.ExpiresAt = &later
	if err := h.client.Patch(ctx, cred, patch); err != nil {
		t.Fatal(err)
	}
	cred = h.waitCredential(t, "partner", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	if c := meta.FindStatusCondition(cred.Status.Conditions, integrationsv1.ConditionStalled); c != nil {
		t.Errorf("Stalled once the expiry was moved out: %+v", c)
	}
}

func TestCredentialSecretNameConflict(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken-secret", Namespace: h.namespace},
		Data: map[string][]byte{"x": []byte("theirs")}}
	if err := h.client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Create(ctx, newCredential(h.namespace, "taken", integrationsv1.CredentialTypeAPIKey)); err != nil {
		t.Fatal(err)
	}
	cred := h.waitCredential(t, "taken", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSecretNameConflict)
	if c := meta.FindStatusCondition(cred.Status.Conditions, integrationsv1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue ||
		c.Reason != controllers.ReasonSecretNameConflict || !strings.Contains(c.Message, "taken-secret") {
		t.Errorf("a Secret name taken by someone else should stall the credential, naming the Secret: %+v", c)
	}
	if data := h.secretData(t, "taken-secret"); len(data) != 1 || string(data["x"]) != "theirs" {
		t.Fatal("a Secret we do not own was written")
	}
}

// assertPlainSecretOnlyInSecret: not in the status, the row, events or the manager's logs.
func assertPlainSecretOnlyInSecret(t *testing.T, h *harness, cred *integrationsv1.ApiCredential, plain string) {
	t.Helper()
	ctx := context.Background()
	secretPart := plain[len(plain)-40:]
	check := func(where, text string) {
		if strings.Contains(text, secretPart) {
			t.Errorf("the plain secret appears in %s", where)
		}
	}
	check("the ApiCredential", fmt.Sprintf("%+v", h.getCredential(t, cred.Name)))
	var rowText string
	if err := h.store.Pool().QueryRow(ctx, `SELECT row_to_json(a)::text FROM api_credentials a WHERE credential_id = $1`,
		uuid.MustParse(string(cred.UID))).Scan(&rowText); err != nil {
		t.Fatal(err)
	}
	check("the api_credentials row", rowText)
	if !strings.Contains(rowText, `"hashed_secret":"$2a$`) {
		t.Errorf("the row should hold a bcrypt hash")
	}
	var evs eventsv1.EventList
	if err := h.client.List(ctx, &evs, client.InNamespace(h.namespace)); err != nil {
		t.Fatal(err)
	}
	issued := false
	for _, e := range evs.Items {
		check("event "+e.Reason, e.Note)
		issued = issued || e.Reason == "CredentialIssued"
	}
	if !issued {
		t.Error("no CredentialIssued event")
	}
	check("the manager's logs", h.logs.String())
}

func TestLastUseReachesTheStatus(t *testing.T) {
	h := startManager(t, harnessOptions{resync: time.Second})
	v := h.validator(t)
	if err := h.client.Create(context.Background(), newCredential(h.namespace, "used", integrationsv1.CredentialTypeAPIKey)); err != nil {
		t.Fatal(err)
	}
	cred := h.waitCredential(t, "used", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	if cred.Status.LastUsedAt != nil {
		t.Fatal("an unused credential shows a last use")
	}
	if _, ok := validAPIKey(t, v, string(h.secretData(t, "used-secret")[controllers.SecretKeyAPIKey])); !ok {
		t.Fatal("the issued key is refused")
	}
	eventually(t, 15*time.Second, "status.lastUsedAt synced from Postgres", func() error {
		if h.getCredential(t, "used").Status.LastUsedAt == nil {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
