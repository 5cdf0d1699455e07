package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/spf13/pflag"

	"github.com/ss3dev/integration-operator/dispatcher"
)

// kafkaSecurity is how a component connects to Kafka: TLS with an
// optional CA bundle, and SASL with the credentials from
// KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (never flags, which show in
// the process list).
type kafkaSecurity struct {
	tls       bool
	caFile    string
	mechanism string
}

// addKafkaSecurityFlags adds --<prefix>kafka-tls, -ca-file and -sasl-mechanism.
func addKafkaSecurityFlags(f *pflag.FlagSet, o *kafkaSecurity, prefix, envPrefix string) {
	f.BoolVar(&o.tls, prefix+"kafka-tls", false, "connect to Kafka over TLS")
	f.StringVar(&o.caFile, prefix+"kafka-ca-file", "", "CA bundle for Kafka's TLS certificates (default: system roots)")
	f.StringVar(&o.mechanism, prefix+"kafka-sasl-mechanism", envDefault(envPrefix+"KAFKA_SASL_MECHANISM", ""),
		"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (credentials from KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)")
}

// apply sets k's TLS and SASL; flag names in errors carry prefix.
func (o kafkaSecurity) apply(k *dispatcher.KafkaConfig, prefix string) error {
	k.SASLMechanism = o.mechanism
	k.SASLUsername, k.SASLPassword = os.Getenv("KAFKA_SASL_USERNAME"), os.Getenv("KAFKA_SASL_PASSWORD")
	if !o.tls {
		return nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		tlsCfg.RootCAs = x509.NewCertPool()
		if err := appendCAFile(tlsCfg.RootCAs, prefix+"kafka-ca-file", o.caFile); err != nil {
			return err
		}
	}
	k.TLS = tlsCfg
	return nil
}
