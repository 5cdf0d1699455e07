package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/pflag"

	"github.com/ss3dev/integration-operator/dispatcher"
	"github.com/ss3dev/integration-operator/internal/credentials"
	"github.com/ss3dev/integration-operator/internal/stream"
)

// streamOptions configure the live event stream the credentials API serves
// at GET /events/stream when --stream-kafka-brokers is set.
type streamOptions struct {
	brokers  string
	topics   string
	security kafkaSecurity
	cfg      stream.Config
}

func addStreamFlags(f *pflag.FlagSet, o *streamOptions) {
	f.StringVar(&o.brokers, "stream-kafka-brokers", envDefault("STREAM_KAFKA_BROKERS", ""), "Kafka brokers to read platform events from for GET /events/stream (the live stream for store apps); empty: no stream")
	f.StringVar(&o.topics, "stream-kafka-topics", envDefault("STREAM_KAFKA_TOPICS", "platform.events"), "comma-separated topics the live stream reads")
	f.IntVar(&o.cfg.Window, "stream-window", 1000, "events kept per store for clients resuming with Last-Event-ID")
	f.IntVar(&o.cfg.ClientBuffer, "stream-client-buffer", 256, "events that may wait for one client; a client further behind is dropped (it reconnects and resumes)")
	f.DurationVar(&o.cfg.WindowAge, "stream-window-age", 5*time.Minute, "events older than this are not kept for resuming")
	f.Int64Var(&o.cfg.WindowBytes, "stream-window-bytes", 64<<20, "bytes of events kept for resuming, over all stores (the oldest go first)")
	f.IntVar(&o.cfg.PerCredential, "stream-max-per-credential", 5, "concurrent streams per credential on one replica (more: 429)")
	f.IntVar(&o.cfg.MaxClients, "stream-max-clients", 10000, "concurrent streams on one replica (more: 503 with Retry-After)")
	f.DurationVar(&o.cfg.WriteTimeout, "stream-write-timeout", 30*time.Second, "a client whose socket takes nothing for this long is closed")
	addKafkaSecurityFlags(f, &o.security, "stream-", "STREAM_")
}

// streamAuth authenticates stream clients with the credentials API's own validation.
func streamAuth(s *credentials.Server) stream.Authenticate {
	return func(r *http.Request) (stream.Principal, int) {
		p, status := s.Authenticate(r)
		return stream.Principal{CredentialID: p.CredentialID.String(), StoreID: p.StoreID, Scopes: p.Scopes}, status
	}
}

// feedStream reads every partition of the topics (a consumer group of its
// own per replica, from the newest offset: the stream is live, not a
// replay) and publishes each event to the hub. Undecodable messages are
// the dispatcher's to set aside; here they are skipped.
func feedStream(ctx context.Context, o streamOptions, hub *stream.Hub, log logr.Logger) error {
	host, _ := os.Hostname()
	var k dispatcher.KafkaConfig
	if err := o.security.apply(&k, "stream-"); err != nil {
		return err
	}
	dialer, err := k.Dialer()
	if err != nil {
		return fmt.Errorf("--stream-kafka-sasl-mechanism: %w", err)
	}
	reader := kafka.NewReader(kafka.ReaderConfig{Brokers: splitList(o.brokers), GroupID: fmt.Sprintf("ss3-stream-%s-%s", host, uuid.NewString()),
		GroupTopics: splitList(o.topics), StartOffset: kafka.LastOffset, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 50 * time.Millisecond, Dialer: dialer})
	defer reader.Close()
	for {
		m, err := reader.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error(err, "reading events for the live stream failed; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		e, err := dispatcher.Decode(m)
		if err != nil {
			continue
		}
		hub.Publish(stream.Event{ID: e.ID.String(), StoreID: e.StoreID, Type: e.Type, Data: e.Data})
	}
}
