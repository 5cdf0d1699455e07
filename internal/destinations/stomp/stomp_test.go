package stomp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/destinations/stomp"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

const secret = "whsec_testbed-signing-secret"

func message() destinations.Message {
	body := []byte(fmt.Sprintf(`{"orderId":%q,"note":"line\nbreak: and colon"}`, uuid.NewString()))
	return destinations.Message{DeliveryID: uuid.NewString(), EventID: uuid.NewString(), EventType: "order.placed",
		StoreID: "store-1042", Body: body, Signature: signing.SS3(body, secret)}
}

func TestSendIsReceiptedAndCarriesHeaders(t *testing.T) {
	amq := testbed.Start(t, testbed.Needs{ActiveMQ: true}).ActiveMQ
	consumer := amq.Consume(t, "/queue/orders")
	s := stomp.New(&net.Dialer{}, nil)
	t.Cleanup(s.Close)
	b := stomp.Broker{Address: amq.Addr(), Login: testbed.ActiveMQLogin, Passcode: testbed.ActiveMQPasscode,
		Destination: "/queue/orders", Headers: map[string]string{"x-team": "erp"}}
	want := map[string]destinations.Message{}
	for range 20 {
		m := message()
		want[m.DeliveryID] = m
		if err := s.Send(context.Background(), b, m); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		got := consumer.Next(t)
		m, ok := want[got.Headers[destinations.AttrDelivery]]
		if !ok {
			t.Fatalf("unexpected message %v", got.Headers)
		}
		delete(want, m.DeliveryID)
		if string(got.Body) != string(m.Body) {
			t.Errorf("body %q, want %q", got.Body, m.Body)
		}
		if got.Headers[destinations.AttrEvent] != m.EventType || got.Headers[destinations.AttrEventID] != m.EventID || got.Headers["x-team"] != "erp" {
			t.Errorf("headers %v", got.Headers)
		}
		if !signing.VerifySS3(secret, got.Body, got.Headers[destinations.AttrSignature]) {
			t.Errorf("signature %q does not verify the body", got.Headers[destinations.AttrSignature])
		}
	}
}

func TestRefusedLoginAndBrokerDown(t *testing.T) {
	amq := testbed.Start(t, testbed.Needs{ActiveMQ: true}).ActiveMQ
	s := stomp.New(&net.Dialer{}, nil)
	t.Cleanup(s.Close)
	bad := stomp.Broker{Address: amq.Addr(), Login: testbed.ActiveMQLogin, Passcode: "wrong-passcode-9999", Destination: "/queue/x"}
	err := s.Send(context.Background(), bad, message())
	if !errors.Is(err, destinations.ErrCredentialsRejected) {
		t.Errorf("a wrong passcode: got %v, want ErrCredentialsRejected", err)
	}
	if err != nil && (strings.Contains(err.Error(), "wrong-passcode-9999") || strings.Contains(err.Error(), testbed.ActiveMQLogin)) {
		t.Errorf("the error shows the passcode or the whole login: %v", err)
	}

	good := stomp.Broker{Address: amq.Addr(), Login: testbed.ActiveMQLogin, Passcode: testbed.ActiveMQPasscode, Destination: "/queue/x"}
	if err := s.Send(context.Background(), good, message()); err != nil {
		t.Fatal(err)
	}
	amq.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Send(ctx, good, message()); !errors.Is(err, destinations.ErrUnreachable) {
		t.Errorf("broker down: got %v, want ErrUnreachable", err)
	}
	if err := amq.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := message()
	if err := s.Send(context.Background(), good, m); err != nil {
		t.Fatalf("broker back: %v", err)
	}
	consumer := amq.Consume(t, "/queue/x")
	// The first message, persistent, outlived the restart; then ours.
	seen := map[string]bool{}
	for range 2 {
		seen[consumer.Next(t).Headers[destinations.AttrDelivery]] = true
	}
	if !seen[m.DeliveryID] {
		t.Errorf("the message sent after the restart did not arrive: %v", seen)
	}
}
