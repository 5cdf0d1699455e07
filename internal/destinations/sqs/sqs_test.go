package sqs_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/destinations/sqs"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

const (
	keyID     = "AKIATESTBED00001234"
	secretKey = "testbed-secret-access-key-do-not-log"
	secret    = "whsec_testbed-signing-secret"
)

func message(storeID string) destinations.Message {
	body := []byte(fmt.Sprintf(`{"orderId":%q}`, uuid.NewString()))
	return destinations.Message{DeliveryID: uuid.NewString(), EventID: uuid.NewString(), EventType: "order.placed",
		StoreID: storeID, Body: body, Signature: signing.SS3(body, secret)}
}

// receiveAll takes messages until n have arrived.
func receiveAll(t *testing.T, srv *testbed.SQS, queueURL string, n int) []testbed.SQSMessage {
	t.Helper()
	var got []testbed.SQSMessage
	testbed.Eventually(t, 30*time.Second, 50*time.Millisecond, fmt.Sprintf("%d messages in the queue", n), func() error {
		msgs, err := srv.Receive(context.Background(), queueURL)
		if err != nil {
			return err
		}
		got = append(got, msgs...)
		if len(got) < n {
			return fmt.Errorf("%d so far", len(got))
		}
		return nil
	})
	return got
}

func TestSendCarriesAttributesAndSignature(t *testing.T) {
	srv := testbed.Start(t, testbed.Needs{SQSQueues: []string{"orders", "orders.fifo"}}).SQS
	gate := srv.Gate(t, keyID)
	s := sqs.New(http.DefaultClient, time.Millisecond)
	for _, name := range []string{"orders", "orders.fifo"} {
		q := sqs.Queue{Region: "us-east-1", QueueURL: gate.QueueURL(name), AccessKeyID: keyID, SecretAccessKey: secretKey}
		m := message("store-1042")
		if err := s.Send(context.Background(), q, m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := receiveAll(t, srv, srv.QueueURL(name), 1)[0]
		if got.Body != string(m.Body) {
			t.Errorf("%s: body %q, want the payload byte for byte %q", name, got.Body, m.Body)
		}
		want := map[string]string{destinations.AttrEvent: "order.placed", destinations.AttrEventID: m.EventID, destinations.AttrDelivery: m.DeliveryID}
		for k, v := range want {
			if got.Attributes[k] != v {
				t.Errorf("%s: attribute %s = %q, want %q", name, k, got.Attributes[k], v)
			}
		}
		if !signing.VerifySS3(secret, []byte(got.Body), got.Attributes[destinations.AttrSignature]) {
			t.Errorf("%s: the signature attribute %q does not verify the body", name, got.Attributes[destinations.AttrSignature])
		}
	}
}

func TestSendsReadyTogetherShareBatches(t *testing.T) {
	srv := testbed.Start(t, testbed.Needs{SQSQueues: []string{"batched"}}).SQS
	gate := srv.Gate(t, keyID)
	// A long linger, so the sends started together meet whatever the load.
	s := sqs.New(http.DefaultClient, 300*time.Millisecond)
	q := sqs.Queue{Region: "us-east-1", QueueURL: gate.QueueURL("batched"), AccessKeyID: keyID, SecretAccessKey: secretKey}
	const n = 30
	sent := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		m := message("store-1042")
		sent[string(m.Body)] = true
		wg.Go(func() { errs <- s.Send(context.Background(), q, m) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	batches, singles := gate.Calls("SendMessageBatch"), gate.Calls("SendMessage")
	if batches == 0 || batches+singles >= n {
		t.Errorf("%d sends made %d SendMessageBatch and %d SendMessage calls; want batches of several", n, batches, singles)
	}
	for _, m := range receiveAll(t, srv, srv.QueueURL("batched"), n) {
		if !sent[m.Body] {
			t.Errorf("unexpected message %q", m.Body)
		}
		delete(sent, m.Body)
	}
	if len(sent) > 0 {
		t.Errorf("%d messages missing", len(sent))
	}
	t.Logf("%d sends: %d SendMessageBatch, %d SendMessage", n, batches, singles)
}

func TestRefusedAccessKeyAndUnreachableServer(t *testing.T) {
	srv := testbed.Start(t, testbed.Needs{SQSQueues: []string{"orders"}}).SQS
	gate := srv.Gate(t, keyID)
	s := sqs.New(http.DefaultClient, time.Millisecond)
	bad := sqs.Queue{Region: "us-east-1", QueueURL: gate.QueueURL("orders"), AccessKeyID: "AKIAWRONGKEY0000000", SecretAccessKey: secretKey}
	err := s.Send(context.Background(), bad, message("store-1042"))
	if !errors.Is(err, destinations.ErrCredentialsRejected) || errors.Is(err, destinations.ErrUnreachable) {
		t.Errorf("a refused key: got %v, want ErrCredentialsRejected", err)
	}
	if err != nil && (strings.Contains(err.Error(), secretKey) || !strings.HasPrefix(err.Error(), destinations.CredentialsRejectedPrefix)) {
		t.Errorf("error %q: must start with the prefix the status report reads, and hold no secret", err)
	}

	// Straight at the server, which is then stopped: our outage.
	q := sqs.Queue{Region: "us-east-1", QueueURL: srv.QueueURL("orders"), AccessKeyID: keyID, SecretAccessKey: secretKey}
	srv.Stop()
	if err := s.Send(context.Background(), q, message("store-1042")); !errors.Is(err, destinations.ErrUnreachable) {
		t.Errorf("server down: got %v, want ErrUnreachable", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := message("store-1042")
	if err := s.Send(context.Background(), q, m); err != nil {
		t.Fatalf("server back: %v", err)
	}
	if got := receiveAll(t, srv, srv.QueueURL("orders"), 1); got[0].Body != string(m.Body) {
		t.Errorf("after the restart got %q", got[0].Body)
	}
}

// An SQS-compatible endpoint behind a private CA (goaws behind a TLS
// proxy): reached with a client trusting the CA; without it, the
// certificate's failure is told as such, and as our outage.
func TestSendOverTLSToAPrivateCA(t *testing.T) {
	srv := testbed.Start(t, testbed.Needs{SQSQueues: []string{"tls-orders"}}).SQS
	ca := testbed.NewCA(t)
	proxy := testbed.StartTLSProxy(t, ca, strings.TrimPrefix(srv.Endpoint(), "http://"), "localhost")
	q := sqs.Queue{Region: "us-east-1", QueueURL: "https://" + proxy.Addr("localhost") + "/100010001000/tls-orders",
		AccessKeyID: keyID, SecretAccessKey: secretKey}

	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}}}
	m := message("store-1042")
	if err := sqs.New(trusting, time.Millisecond).Send(context.Background(), q, m); err != nil {
		t.Fatal(err)
	}
	if got := receiveAll(t, srv, srv.QueueURL("tls-orders"), 1)[0]; got.Body != string(m.Body) {
		t.Errorf("body %q, want %q", got.Body, m.Body)
	}

	err := sqs.New(http.DefaultClient, time.Millisecond).Send(context.Background(), q, message("store-1042"))
	if !errors.Is(err, destinations.ErrTLSVerification) || !errors.Is(err, destinations.ErrUnreachable) {
		t.Fatalf("got %v, want ErrTLSVerification as ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), secretKey) {
		t.Errorf("the error shows the secret key: %v", err)
	}
}
