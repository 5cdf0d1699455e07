package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Vault restarts empty (a dev restart; a restore from an older snapshot
// loses the same way) while events flow: the subscription says so, with
// an Event, the manager puts the secret back from its Kubernetes Secret,
// and deliveries resume within 30 s, every event signed with the same
// secret as before and delivered.
func TestVaultLosingItsDataUnderLoad(t *testing.T) {
	w, bed := newWorld(t)
	ctx := context.Background()
	w.start("manager", "manager", "--metrics-bind-address", freeAddr(t), "--health-probe-bind-address", freeAddr(t),
		"--delivery-status-interval", "1s", "--bcrypt-cost", "4", "--dev-logs")
	w.start("dispatcher", "dispatcher", "--metrics-bind-address", freeAddr(t), "--inbound-bind-address", "", "--allow-networks", "127.0.0.0/8",
		"--poll-interval", "100ms", "--kafka-session-timeout", "6s", "--dev-logs")

	receiverAddr := freeAddr(t)
	manifest := filepath.Join(w.dir, "subscription.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: integrations.ss3.dev/v1
kind: WebhookSubscription
metadata:
  name: vault-loss
  namespace: default
spec:
  storeId: store-7
  displayName: survives a Vault restart
  targetURL: http://%s/hooks
  allowInsecureHTTP: true
  events: ["order.*"]
  deliveryTimeout: 5s
`, receiverAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	w.kubectl("apply", "-f", manifest)
	w.kubectl("wait", "--for=condition=Ready", "webhooksubscription/vault-loss", "--timeout=60s")
	secret, receiverLog := w.startReceiver(receiverAddr, "vault-loss")
	receiver := func() string { data, _ := os.ReadFile(receiverLog); return string(data) }

	// 20 events a second for a minute and a half, in the background.
	const events = 1800
	producer := exec.Command(w.bin, "produce", "--store", "store-7", "--type", "order.placed", "--count", fmt.Sprint(events), "--rate", "20")
	producer.Env = w.env
	if err := producer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Process.Kill(); _ = producer.Wait() })
	// Distinct deliveries accepted: a delivery sent again counts once.
	delivered := func() int {
		ids := map[string]bool{}
		for _, line := range strings.Split(receiver(), "\n") {
			if !strings.Contains(line, "signature=ok answered=200") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if id, ok := strings.CutPrefix(f, "delivery="); ok {
					ids[id] = true
				}
			}
		}
		return len(ids)
	}
	w.eventually(30*time.Second, "deliveries flowing", func() error {
		if n := delivered(); n < 100 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})

	bed.Vault.Stop()
	time.Sleep(3 * time.Second)
	if err := bed.Vault.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bed.Vault.EnableKV2(ctx, "ss3/kv"); err != nil { // the mount is part of what an operator restores
		t.Fatal(err)
	}
	back := time.Now()

	// The dispatcher finds the secret gone once its cache lapses; the
	// resource says so and the manager restores it.
	var noticed time.Time
	w.eventually(60*time.Second, "an Event says the secret went missing from Vault", func() error {
		out := w.kubectl("get", "events", "--field-selector", "involvedObject.name=vault-loss,reason=SecretMissingFromVault", "-o", "name")
		if strings.TrimSpace(out) == "" {
			return fmt.Errorf("no Event yet")
		}
		noticed = time.Now()
		return nil
	})
	atNotice := delivered()
	w.eventually(30*time.Second, "deliveries resumed after the secret was restored", func() error {
		if n := delivered(); n <= atNotice {
			return fmt.Errorf("%d delivered, as when the loss was noticed", n)
		}
		return nil
	})
	t.Logf("Vault back at 0s; loss shown after %v; deliveries resumed by %v",
		noticed.Sub(back).Round(time.Second), time.Since(back).Round(time.Second))
	vc, err := bed.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	uid := w.kubectl("get", "whsub", "vault-loss", "-o", "jsonpath={.metadata.uid}")
	restored, err := vc.KVv2("ss3/kv").Get(ctx, "integration-service/webhook/"+uid+"/secret")
	if err != nil || restored.Data["secret"] != string(secret) {
		t.Fatalf("the secret in Vault is not the subscription's own (%v)", err)
	}
	w.eventually(30*time.Second, "SigningSecretSynced true again", func() error {
		out := w.kubectl("get", "whsub", "vault-loss", "-o", `jsonpath={.status.conditions[?(@.type=="SigningSecretSynced")].status}`)
		if out != "True" {
			return fmt.Errorf("SigningSecretSynced=%q", out)
		}
		return nil
	})
	if err := producer.Wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	w.eventually(2*time.Minute, "every event delivered, signed with the subscription's secret", func() error {
		if n, bad := delivered(), strings.Count(receiver(), "signature=BAD"); n != events || bad > 0 {
			return fmt.Errorf("%d of %d delivered, %d with a bad signature", n, events, bad)
		}
		return nil
	})
}
