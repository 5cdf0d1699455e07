package main

import (
	"crypto/x509"
	"fmt"
	"os"
)

// appendCAFile adds the PEM certificates in path to pool; errors name
// flag (without its dashes), so a bad file stops start-up saying which.
func appendCAFile(pool *x509.CertPool, flag, path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--%s: %s holds no PEM certificate", flag, path)
	}
	return nil
}

// destinationRoots is what queue destinations' certificates are verified
// against: the system's CAs and path's (--destination-ca-file); nil, the
// system's alone, when path is empty.
func destinationRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		// No system roots to read (a scratch image): path's alone.
		pool = x509.NewCertPool()
	}
	if err := appendCAFile(pool, "destination-ca-file", path); err != nil {
		return nil, err
	}
	return pool, nil
}
