package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/ss3dev/integration-operator/internal/settings"
	"github.com/ss3dev/integration-operator/internal/testbed"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// Connection settings the platform keeps in Vault are used when no flag or
// variable gives them.
func TestSettingsFromVault(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true, Vault: true, VaultKVMounts: []string{"ss3/kv"}})
	ctx := context.Background()
	vc, err := vault.New(ctx, vault.Config{Address: bed.Vault.Addr(), Token: bed.Vault.Token()})
	if err != nil {
		t.Fatal(err)
	}
	withoutUser := strings.Replace(bed.DatabaseURL, "postgres@", "", 1)
	for name, value := range map[string]string{"db.url": withoutUser, "db.username": "postgres", "db.password": "unused-with-trust-auth"} {
		if _, err := vc.Put(ctx, name, map[string]string{"value": value}); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := bed.Vault.Client()
	if _, err := raw.KVv2("ss3/kv").Put(ctx, "shared/kafka", map[string]any{"bootstrap.servers": "kafka-0:9092,kafka-1:9092"}); err != nil {
		t.Fatal(err)
	}

	t.Setenv("DATABASE_URL", "")
	t.Setenv("VAULT_ADDR", bed.Vault.Addr())
	t.Setenv("VAULT_TOKEN", bed.Vault.Token())
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"migrate"})
	if err := root.ExecuteContext(ctx); err != nil || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate with the database from Vault: %q %v", out.String(), err)
	}
	fromVault, err := settings.DatabaseURL(ctx, vc, "")
	if err != nil || !strings.Contains(fromVault, "postgres:unused-with-trust-auth@") {
		t.Fatalf("credentials should go into the URL: %v", err)
	}
	// The platform's Java services keep db.url as a JDBC URL: migrate
	// connects with it too, user and password from their own keys.
	pg, err := url.Parse(bed.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	jdbc := "jdbc:postgresql://" + pg.Host + pg.Path + "?user=ignored&ApplicationName=integration-operator&prepareThreshold=0"
	if _, err := vc.Put(ctx, "db.url", map[string]string{"value": jdbc}); err != nil {
		t.Fatal(err)
	}
	root = newRootCommand()
	out.Reset()
	root.SetOut(&out)
	root.SetArgs([]string{"migrate"})
	if err := root.ExecuteContext(ctx); err != nil || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate with a JDBC db.url from Vault: %q %v", out.String(), err)
	}
	if given, _ := settings.DatabaseURL(ctx, vc, "postgres://given/db"); given != "postgres://given/db" {
		t.Fatal("a given URL must win over Vault")
	}
	brokers, err := settings.KafkaBrokers(ctx, vc, "")
	if err != nil || brokers != "kafka-0:9092,kafka-1:9092" {
		t.Fatalf("brokers from Vault: %q %v", brokers, err)
	}
	if err := vc.Delete(ctx, "db.url"); err != nil {
		t.Fatal(err)
	}
	if _, err := settings.DatabaseURL(ctx, vc, ""); err == nil || !strings.Contains(fmt.Sprint(err), "db.url") && !strings.Contains(fmt.Sprint(err), "not found") {
		t.Fatalf("a missing db.url: %v", err)
	}
}

// --help prints flag defaults; the database URL, taken from DATABASE_URL,
// carries a password and must not be among them, in any subcommand.
func TestHelpNeverPrintsTheDatabasePassword(t *testing.T) {
	const password = "pw-that-must-not-print"
	t.Setenv("DATABASE_URL", "postgres://app:"+password+"@db.internal:5432/integration")
	for _, sub := range newRootCommand().Commands() {
		if sub.Flags().Lookup("database-url") == nil {
			continue
		}
		t.Run(sub.Name(), func(t *testing.T) {
			root := newRootCommand()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs([]string{sub.Name(), "--help"})
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "--database-url") {
				t.Fatalf("no --database-url in the help:\n%s", out.String())
			}
			if strings.Contains(out.String(), password) {
				t.Fatal("--help printed the password from DATABASE_URL")
			}
		})
	}
}
