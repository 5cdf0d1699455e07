package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

const (
	sqsKeyID  = "AKIATESTBED00005678"
	sqsSecret = "testbed-secret-access-key-never-shown"
)

// sqsSubscription subscribes to store's order events with an SQS queue
// (reached through gate) as its destination, the access key in Vault as
// the manager puts it.
func (e *env) sqsSubscription(t testing.TB, storeID, queueURL, keyID string) (store.Subscription, string) {
	t.Helper()
	sub, secret := e.subscribe(t, storeID, queueURL, []string{"order.*"}, func(s *store.Subscription) {
		s.Destination = &store.Destination{Kind: store.DestinationSQS, SQS: &store.SQSDestination{Region: "us-east-1", QueueURL: queueURL}}
	})
	e.destinationCredentials(t, sub.ID, map[string]string{destinations.FieldAccessKeyID: keyID, destinations.FieldSecretAccessKey: sqsSecret})
	return sub, secret
}

func (e *env) stompSubscription(t testing.TB, storeID, addr, destination string, opts ...func(*store.STOMPDestination)) (store.Subscription, string) {
	t.Helper()
	sub, secret := e.subscribe(t, storeID, "stomp://"+addr+destination, []string{"order.*"}, func(s *store.Subscription) {
		s.Destination = &store.Destination{Kind: store.DestinationSTOMP, STOMP: &store.STOMPDestination{
			Address: addr, Login: true, Destination: destination, Headers: map[string]string{"x-source": "ss3"}}}
		for _, o := range opts {
			o(s.Destination.STOMP)
		}
	})
	e.destinationCredentials(t, sub.ID, map[string]string{destinations.FieldLogin: testbed.ActiveMQLogin, destinations.FieldPasscode: testbed.ActiveMQPasscode})
	return sub, secret
}

func (e *env) destinationCredentials(t testing.TB, id uuid.UUID, creds map[string]string) {
	t.Helper()
	if _, err := e.vault.Put(context.Background(), "webhook/"+id.String()+"/destination", creds); err != nil {
		t.Fatal(err)
	}
}

// deliveredOnce waits until every delivery of sub is DELIVERED after
// exactly one attempt.
func (e *env) deliveredOnce(t *testing.T, sub uuid.UUID, n int) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%d deliveries delivered, one attempt each", n), func() error {
		var done, total int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'DELIVERED' AND attempt_number = 1), count(*)
			FROM webhook_deliveries WHERE subscription_id = $1`, sub).Scan(&done, &total)
		if err != nil || done != n || total != n {
			return fmt.Errorf("%d of %d delivered once (want %d): %v", done, total, n, err)
		}
		return nil
	})
}

// waitingOnBroker waits until n deliveries of sub wait for an unreachable
// broker with no attempt spent.
func (e *env) waitingOnBroker(t *testing.T, sub uuid.UUID, n int) {
	t.Helper()
	eventually(t, 30*time.Second, "deliveries waiting on the broker, no attempt spent", func() error {
		var waiting int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries
			WHERE subscription_id = $1 AND status = 'PENDING' AND attempt_number = 0 AND last_error LIKE '%broker could not be reached%'`,
			sub).Scan(&waiting)
		if err != nil || waiting != n {
			return fmt.Errorf("%d waiting, want %d: %v", waiting, n, err)
		}
		return nil
	})
}

func orderEvents(t *testing.T, storeID string, n int) ([]kafka.Message, map[string]bool) {
	msgs := make([]kafka.Message, n)
	bodies := map[string]bool{}
	for i := range msgs {
		var id uuid.UUID
		msgs[i], id = envelopeMessage(t, storeID, "order.placed", map[string]any{"orderId": fmt.Sprintf("o-%d", i), "event": id})
		var env struct{ Data json.RawMessage }
		_ = json.Unmarshal(msgs[i].Value, &env)
		bodies[string(env.Data)] = true
	}
	return msgs, bodies
}

func TestEventsReachAnSQSQueueSignedAndBatched(t *testing.T) {
	e := startEnv(t)
	sqsServer := testbed.Start(t, testbed.Needs{SQSQueues: []string{"orders"}}).SQS
	gate := sqsServer.Gate(t, sqsKeyID)
	sub, secret := e.sqsSubscription(t, "store-q", gate.QueueURL("orders"), sqsKeyID)
	e.run(t, Config{})

	// One event: one message, its attributes and signature checked by a
	// consumer that reads the queue over plain HTTP.
	msg, eventID := envelopeMessage(t, "store-q", "order.placed", map[string]any{"orderId": "o-1"})
	e.produce(t, msg)
	e.deliveredOnce(t, sub.ID, 1)
	got := receiveSQS(t, sqsServer, "orders", 1)[0]
	deliveryID := deliveryOf(t, e, sub.ID)
	if got.Attributes[destinations.AttrEventID] != eventID.String() || got.Attributes[destinations.AttrEvent] != "order.placed" ||
		got.Attributes[destinations.AttrDelivery] != deliveryID.String() {
		t.Errorf("attributes %v; want event %s, delivery %s", got.Attributes, eventID, deliveryID)
	}
	if !signing.VerifySS3(secret, []byte(got.Body), got.Attributes[destinations.AttrSignature]) {
		t.Errorf("the signature attribute does not verify the body %q", got.Body)
	}

	// Many at once: SendMessageBatch carries them, and none is lost.
	msgs, bodies := orderEvents(t, "store-q", 60)
	e.produce(t, msgs...)
	e.deliveredOnce(t, sub.ID, 61)
	for _, m := range receiveSQS(t, sqsServer, "orders", 60) {
		delete(bodies, m.Body)
	}
	if len(bodies) > 0 {
		t.Errorf("%d payloads did not reach the queue", len(bodies))
	}
	if gate.Calls("SendMessageBatch") == 0 {
		t.Errorf("60 events made %d SendMessage calls and no SendMessageBatch", gate.Calls("SendMessage"))
	}
	t.Logf("61 events: %d SendMessageBatch, %d SendMessage", gate.Calls("SendMessageBatch"), gate.Calls("SendMessage"))
}

func TestSQSOutageSpendsNoAttempt(t *testing.T) {
	e := startEnv(t)
	sqsServer := testbed.Start(t, testbed.Needs{SQSQueues: []string{"orders"}}).SQS
	// Straight at the server (a gate would answer 502 for it).
	sub, secret := e.sqsSubscription(t, "store-o", sqsServer.QueueURL("orders"), sqsKeyID)
	e.run(t, Config{})
	sqsServer.Stop()
	msgs, bodies := orderEvents(t, "store-o", 5)
	e.produce(t, msgs...)
	e.waitingOnBroker(t, sub.ID, 5)
	if st := e.statsOf(t, sub.ID); st.DestinationDownSince == nil || st.DestinationDownReason != store.DestinationUnreachable {
		t.Errorf("the stats should say since when the queue is unreachable: %+v", st)
	}
	if err := sqsServer.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.deliveredOnce(t, sub.ID, 5)
	if st := e.statsOf(t, sub.ID); st.DestinationDownSince != nil || st.DestinationDownReason != "" {
		t.Errorf("reaching the queue again should end the outage: %+v", st)
	}
	for _, m := range receiveSQS(t, sqsServer, "orders", 5) {
		if !bodies[m.Body] {
			t.Errorf("unexpected message %q", m.Body)
		}
		delete(bodies, m.Body)
		// goaws keeps no attributes of batched entries: checked where present.
		if sig, ok := m.Attributes[destinations.AttrSignature]; ok && !signing.VerifySS3(secret, []byte(m.Body), sig) {
			t.Errorf("signature %q does not verify", sig)
		}
	}
	if len(bodies) > 0 {
		t.Errorf("%d payloads lost across the outage", len(bodies))
	}
}

func (e *env) statsOf(t *testing.T, sub uuid.UUID) store.SubscriptionStats {
	t.Helper()
	stats, err := e.store.SubscriptionStatsAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return stats[sub]
}

// deadLetteredUnattempted waits until sub's n deliveries are dead-lettered
// with no attempt spent, for a reason containing why.
func (e *env) deadLetteredUnattempted(t *testing.T, sub uuid.UUID, n int, why string) {
	t.Helper()
	eventually(t, 30*time.Second, "dead-lettered, no attempt spent: "+why, func() error {
		var dead, total int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'DEAD_LETTERED' AND attempt_number = 0
				AND last_error LIKE '%' || $2 || '%'), count(*)
			FROM webhook_deliveries WHERE subscription_id = $1`, sub, why).Scan(&dead, &total)
		if err != nil || dead != n || total != n {
			return fmt.Errorf("%d of %d dead-lettered so (want %d): %v", dead, total, n, err)
		}
		return nil
	})
}

func TestADestinationOutageIsWaitedOutOnlySoLong(t *testing.T) {
	e := startEnv(t)
	// A broker address nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	sub, _ := e.stompSubscription(t, "store-u", addr, "/queue/nowhere")
	const maxAge = 2 * time.Second
	e.run(t, Config{DestinationDownMaxAge: maxAge})
	msgs, _ := orderEvents(t, "store-u", 3)
	e.produce(t, msgs...)
	e.waitingOnBroker(t, sub.ID, 3)
	st := e.statsOf(t, sub.ID)
	if st.DestinationDownSince == nil || st.DestinationDownReason != store.DestinationUnreachable {
		t.Fatalf("the stats should say since when the broker is unreachable: %+v", st)
	}
	e.deadLetteredUnattempted(t, sub.ID, 3, "the destination has been unreachable since")
	if dl := e.readTopic(t, "webhook.dead_lettered", 3); !strings.Contains(string(dl[0].Value), "unreachable since") {
		t.Errorf("webhook.dead_lettered: %s", dl[0].Value)
	}
	if st := e.statsOf(t, sub.ID); st.DeadLettered != 3 || st.FailedAttempts != 0 {
		t.Errorf("three dead letters and no failed attempt expected: %+v", st)
	}
}

func TestMissingDestinationCredentialsAreWaitedOutOnlySoLong(t *testing.T) {
	e := startEnv(t)
	sqsServer := testbed.Start(t, testbed.Needs{SQSQueues: []string{"orders"}}).SQS
	// The manager never copied the credentials to Vault.
	sub, _ := e.subscribe(t, "store-m", sqsServer.QueueURL("orders"), []string{"order.*"}, func(s *store.Subscription) {
		s.Destination = &store.Destination{Kind: store.DestinationSQS, SQS: &store.SQSDestination{Region: "us-east-1", QueueURL: sqsServer.QueueURL("orders")}}
	})
	e.run(t, Config{DestinationDownMaxAge: 2 * time.Second})
	msg, _ := envelopeMessage(t, "store-m", "order.placed", map[string]any{"orderId": "o-9"})
	e.produce(t, msg)
	eventually(t, 30*time.Second, "the stats saying the credentials are missing", func() error {
		if st := e.statsOf(t, sub.ID); st.DestinationDownSince == nil || st.DestinationDownReason != store.DestinationCredentialsMissing {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	e.deadLetteredUnattempted(t, sub.ID, 1, "the destination's credentials have been missing from Vault since")
}

func receiveSQS(t *testing.T, srv *testbed.SQS, queue string, n int) []testbed.SQSMessage {
	t.Helper()
	var got []testbed.SQSMessage
	eventually(t, 30*time.Second, fmt.Sprintf("%d messages in %s", n, queue), func() error {
		msgs, err := srv.Receive(context.Background(), srv.QueueURL(queue))
		got = append(got, msgs...)
		if err != nil || len(got) < n {
			return fmt.Errorf("%d so far: %v", len(got), err)
		}
		return nil
	})
	return got
}

func TestEventsReachAnActiveMQQueueAndSurviveItsOutage(t *testing.T) {
	e := startEnv(t)
	amq := testbed.Start(t, testbed.Needs{ActiveMQ: true}).ActiveMQ
	sub, secret := e.stompSubscription(t, "store-s", amq.Addr(), "/queue/orders")
	consumer := amq.Consume(t, "/queue/orders")
	e.run(t, Config{})

	msgs, bodies := orderEvents(t, "store-s", 20)
	e.produce(t, msgs...)
	e.deliveredOnce(t, sub.ID, 20)
	check := func(m testbed.STOMPMessage) {
		t.Helper()
		if !bodies[string(m.Body)] {
			t.Errorf("unexpected body %q", m.Body)
		}
		delete(bodies, string(m.Body))
		if !signing.VerifySS3(secret, m.Body, m.Headers[destinations.AttrSignature]) || m.Headers[destinations.AttrEvent] != "order.placed" ||
			m.Headers[destinations.AttrEventID] == "" || m.Headers[destinations.AttrDelivery] == "" || m.Headers["x-source"] != "ss3" {
			t.Errorf("headers %v do not carry the event, delivery and a signature that verifies", m.Headers)
		}
	}
	for range 20 {
		check(consumer.Next(t))
	}

	// The broker goes away: the deliveries wait, spending no attempt.
	amq.Stop()
	more, moreBodies := orderEvents(t, "store-s", 10)
	e.produce(t, more...)
	e.waitingOnBroker(t, sub.ID, 10)
	if err := amq.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.deliveredOnce(t, sub.ID, 30)
	bodies = moreBodies
	consumer = amq.Consume(t, "/queue/orders")
	for range 10 {
		check(consumer.Next(t))
	}
}

// Brokers behind TLS: one whose private CA the dispatcher is given
// (DestinationRootCAs, --destination-ca-file) is delivered to; one whose
// CA it does not know is waited on as unreachable, no attempt spent, the
// stats saying why.
func TestStompBrokersBehindAPrivateCA(t *testing.T) {
	e := startEnv(t)
	amq := testbed.Start(t, testbed.Needs{ActiveMQ: true}).ActiveMQ
	trusted, unknown := testbed.NewCA(t), testbed.NewCA(t)
	useTLS := func(d *store.STOMPDestination) { d.TLS = true }
	good, secret := e.stompSubscription(t, "store-t", testbed.StartTLSProxy(t, trusted, amq.Addr(), "localhost").Addr("localhost"), "/queue/tls", useTLS)
	bad, _ := e.stompSubscription(t, "store-v", testbed.StartTLSProxy(t, unknown, amq.Addr(), "localhost").Addr("localhost"), "/queue/tls-unknown", useTLS)
	consumer := amq.Consume(t, "/queue/tls")
	e.run(t, Config{DestinationRootCAs: trusted.Pool})

	msgs, bodies := orderEvents(t, "store-t", 5)
	others, _ := orderEvents(t, "store-v", 3)
	e.produce(t, append(msgs, others...)...)
	e.deliveredOnce(t, good.ID, 5)
	for range 5 {
		m := consumer.Next(t)
		if !bodies[string(m.Body)] || !signing.VerifySS3(secret, m.Body, m.Headers[destinations.AttrSignature]) || m.Headers["x-source"] != "ss3" {
			t.Errorf("unexpected message %q %v", m.Body, m.Headers)
		}
		delete(bodies, string(m.Body))
	}

	e.waitingOnBroker(t, bad.ID, 3)
	st := e.statsOf(t, bad.ID)
	if st.DestinationDownSince == nil || st.DestinationDownReason != store.DestinationUnreachable || st.FailedAttempts != 0 ||
		!strings.Contains(st.LastError, "TLS verification of the destination's certificate failed") {
		t.Errorf("the stats should say the broker's certificate does not verify, no attempt spent: %+v", st)
	}
	if strings.Contains(st.LastError, testbed.ActiveMQPasscode) {
		t.Errorf("the error shows the passcode: %s", st.LastError)
	}
}

func TestRefusedSQSCredentialsDeadLetterAfterTheSchedule(t *testing.T) {
	e := startEnv(t)
	sqsServer := testbed.Start(t, testbed.Needs{SQSQueues: []string{"orders"}}).SQS
	gate := sqsServer.Gate(t, sqsKeyID)
	sub, _ := e.sqsSubscription(t, "store-b", gate.QueueURL("orders"), "AKIAREVOKED000000000")
	e.run(t, Config{RetrySchedule: []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond}, BreakerOpen: 100 * time.Millisecond})
	msg, _ := envelopeMessage(t, "store-b", "order.placed", map[string]any{"orderId": "o-7"})
	e.produce(t, msg)
	eventually(t, 30*time.Second, "dead-lettered after three attempts", func() error {
		var status string
		var attempts int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT status, attempt_number FROM webhook_deliveries WHERE subscription_id = $1`,
			sub.ID).Scan(&status, &attempts)
		if err != nil || status != store.DeliveryDeadLettered || attempts != 3 {
			return fmt.Errorf("%s after %d: %v", status, attempts, err)
		}
		return nil
	})
	stats, err := e.store.SubscriptionStatsAll(context.Background())
	st := stats[sub.ID]
	if err != nil || !strings.HasPrefix(st.LastError, destinations.CredentialsRejectedPrefix) || !strings.Contains(st.LastError, "InvalidClientTokenId") {
		t.Fatalf("the last error should say the credentials were refused: %+v %v", st, err)
	}
	if strings.Contains(st.LastError+st.LastDeadLetterReason, sqsSecret) {
		t.Fatal("the secret access key reached the stats")
	}
	dl := e.readTopic(t, "webhook.dead_lettered", 1)
	if !strings.Contains(string(dl[0].Value), "InvalidClientTokenId") {
		t.Errorf("webhook.dead_lettered: %s", dl[0].Value)
	}
}
