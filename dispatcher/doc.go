// Package dispatcher delivers the platform's domain events from Kafka to
// webhook endpoints and connectors. It reads as its pipeline, one file per
// stage: decode, route, persist, deliver, retry, dead-letter, publish, report.
package dispatcher
