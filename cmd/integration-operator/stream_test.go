package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"golang.org/x/crypto/bcrypt"

	"github.com/ss3dev/integration-operator/internal/credentials"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// issueAPIKey stores an active API key for storeID, as the manager would.
func issueAPIKey(t *testing.T, st *store.Store, storeID string, scopes ...string) credentials.Issued {
	t.Helper()
	key, _ := credentials.NewAPIKey()
	hash, _ := bcrypt.GenerateFromPassword([]byte(key.Secret), bcrypt.MinCost)
	if err := st.InsertCredential(context.Background(), store.Credential{ID: uuid.New(), StoreID: storeID, Name: "n",
		Type: store.CredentialTypeAPIKey, ClientID: key.ClientID, HashedSecret: string(hash),
		Scopes: scopes, IsActive: true, IssuedAt: time.Now(), CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestLiveStreamServesAStoresEventsByScope runs the credentials API with
// the live stream on, as a deployment would: real keys in Postgres, events
// from Kafka, SSE clients reading.
func TestLiveStreamServesAStoresEventsByScope(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true, KafkaTopics: []string{"platform.events"}})
	ctx := context.Background()
	st := bed.Store(t)
	ordersKey := issueAPIKey(t, st, "store-7", "orders:read").Presented
	inventoryKey := issueAPIKey(t, st, "store-7", "inventory:read").Presented

	apiAddr, _, stop, done := startCredentialsAPI(t, bed.DatabaseURL, "--stream-kafka-brokers", strings.Join(bed.Kafka.Brokers(), ","))
	open := func(key string) (*http.Response, chan string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+apiAddr+"/events/stream", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		ids := make(chan string, 100)
		go func() {
			defer close(ids)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
					ids <- id
				}
			}
		}()
		t.Cleanup(func() { resp.Body.Close() })
		return resp, ids
	}
	if resp, _ := open("ss3_ak_not-a-key"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a bad key: %d, want 401", resp.StatusCode)
	}
	ordersResp, orders := open(ordersKey)
	inventoryResp, inventory := open(inventoryKey)
	if ordersResp.StatusCode != http.StatusOK || inventoryResp.StatusCode != http.StatusOK {
		t.Fatalf("streams: %d %d", ordersResp.StatusCode, inventoryResp.StatusCode)
	}

	w := &kafka.Writer{Addr: kafka.TCP(bed.Kafka.Brokers()...), Topic: "platform.events", BatchTimeout: time.Millisecond}
	defer w.Close()
	send := func(storeID, typ string) string {
		id := uuid.NewString()
		v, _ := json.Marshal(map[string]any{"eventId": id, "eventType": typ, "storeId": storeID, "time": time.Now().UTC(), "data": map[string]any{"n": 1}})
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(storeID), Value: v}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// The stream starts from the newest offset once its group has joined:
	// send store-7 orders until one arrives.
	testbed.Eventually(t, 30*time.Second, 200*time.Millisecond, "the stream is live", func() error {
		send("store-7", "order.placed")
		select {
		case <-orders:
			return nil
		case <-time.After(100 * time.Millisecond):
			return fmt.Errorf("nothing yet")
		}
	})
	other := send("store-9", "order.placed")
	inv := send("store-7", "inventory.updated")
	mine := send("store-7", "order.shipped")
	deadline := time.After(20 * time.Second)
	for got := ""; got != mine; {
		select {
		case got = <-orders:
			if got == other || got == inv {
				t.Fatalf("the orders:read key of store-7 got %s (another store's, or an inventory event)", got)
			}
		case <-deadline:
			t.Fatal("store-7's order did not arrive")
		}
	}
	for got := ""; got != inv; {
		select {
		case got = <-inventory:
			if got == other || got == mine {
				t.Fatalf("the inventory:read key got %s, an order event", got)
			}
		case <-deadline:
			t.Fatal("store-7's inventory event did not arrive")
		}
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("credentials-api: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("credentials-api did not stop with streams open")
	}
}
