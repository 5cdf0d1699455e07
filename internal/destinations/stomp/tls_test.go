package stomp_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/destinations/stomp"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// A broker behind a private CA: ActiveMQ's STOMP port behind a TLS proxy
// whose certificate, for localhost only, a CA made here signs.
func TestTLSToABrokerWithAPrivateCA(t *testing.T) {
	amq := testbed.Start(t, testbed.Needs{ActiveMQ: true}).ActiveMQ
	ca := testbed.NewCA(t)
	proxy := testbed.StartTLSProxy(t, ca, amq.Addr(), "localhost")
	broker := func(host, destination string) stomp.Broker {
		return stomp.Broker{Address: proxy.Addr(host), TLS: true, Login: testbed.ActiveMQLogin, Passcode: testbed.ActiveMQPasscode,
			Destination: destination, Headers: map[string]string{"x-team": "erp"}}
	}
	noSecrets := func(t *testing.T, err error) {
		t.Helper()
		if strings.Contains(err.Error(), testbed.ActiveMQPasscode) {
			t.Errorf("the error shows the passcode: %v", err)
		}
	}

	t.Run("the CA trusted", func(t *testing.T) {
		consumer := amq.Consume(t, "/queue/tls-orders")
		s := stomp.New(&net.Dialer{}, ca.Pool)
		t.Cleanup(s.Close)
		m := message()
		if err := s.Send(context.Background(), broker("localhost", "/queue/tls-orders"), m); err != nil {
			t.Fatal(err)
		}
		got := consumer.Next(t)
		if string(got.Body) != string(m.Body) {
			t.Errorf("body %q, want %q", got.Body, m.Body)
		}
		if got.Headers[destinations.AttrDelivery] != m.DeliveryID || got.Headers[destinations.AttrEvent] != m.EventType ||
			got.Headers[destinations.AttrEventID] != m.EventID || got.Headers["x-team"] != "erp" {
			t.Errorf("headers %v", got.Headers)
		}
		if !signing.VerifySS3(secret, got.Body, got.Headers[destinations.AttrSignature]) {
			t.Errorf("signature %q does not verify the body", got.Headers[destinations.AttrSignature])
		}
	})

	t.Run("the system's CAs only", func(t *testing.T) {
		s := stomp.New(&net.Dialer{}, nil)
		t.Cleanup(s.Close)
		err := s.Send(context.Background(), broker("localhost", "/queue/tls-x"), message())
		if !errors.Is(err, destinations.ErrTLSVerification) || !errors.Is(err, destinations.ErrUnreachable) {
			t.Fatalf("got %v, want ErrTLSVerification as ErrUnreachable", err)
		}
		if !strings.Contains(err.Error(), "TLS verification of the destination's certificate failed") || !strings.Contains(err.Error(), "unknown authority") ||
			!strings.Contains(err.Error(), "--destination-ca-file") {
			t.Errorf("the error does not say the certificate's CA is unknown, and where to trust one: %v", err)
		}
		noSecrets(t, err)
	})

	t.Run("another name", func(t *testing.T) {
		s := stomp.New(&net.Dialer{}, ca.Pool)
		t.Cleanup(s.Close)
		// The certificate names localhost, not 127.0.0.1.
		err := s.Send(context.Background(), broker("127.0.0.1", "/queue/tls-x"), message())
		if !errors.Is(err, destinations.ErrTLSVerification) || !errors.Is(err, destinations.ErrUnreachable) {
			t.Fatalf("got %v, want ErrTLSVerification as ErrUnreachable", err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("the error does not say which name failed: %v", err)
		}
		noSecrets(t, err)
	})

	t.Run("not TLS there", func(t *testing.T) {
		s := stomp.New(&net.Dialer{}, ca.Pool)
		t.Cleanup(s.Close)
		b := broker("localhost", "/queue/tls-x")
		b.Address = amq.Addr() // ActiveMQ itself, speaking plain STOMP, waits for more
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := s.Send(ctx, b, message())
		if !errors.Is(err, destinations.ErrUnreachable) || errors.Is(err, destinations.ErrTLSVerification) || !strings.Contains(err.Error(), "TLS with the broker failed") {
			t.Fatalf("got %v, want ErrUnreachable saying TLS failed", err)
		}
		noSecrets(t, err)
	})
}
