package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Vault is a real `vault server -dev` on a free loopback port, with a random
// root token. Dev mode keeps everything in memory.
type Vault struct {
	dir   string
	bin   string
	port  int
	token string
	proc  *process
}

// StartVault starts a dev-mode Vault server and waits until it is unsealed.
func StartVault(ctx context.Context) (*Vault, error) {
	bin, err := toolPath("vault", "VAULT_BIN")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testbed-vault-")
	if err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	v := &Vault{dir: dir, bin: bin, token: "root-" + hex.EncodeToString(b[:])}
	for attempt := 0; ; attempt++ {
		if v.port, err = freePort(); err != nil {
			break
		}
		if err = v.Start(ctx); err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return v, nil
}

// Start runs the server (again: dev mode starts empty) on the same port and token.
func (v *Vault) Start(ctx context.Context) error {
	cmd := exec.Command(v.bin, "server", "-dev",
		"-dev-listen-address="+hostPort(v.port), "-dev-root-token-id="+v.token)
	// HOME keeps the dev token helper's ~/.vault-token out of the real home.
	cmd.Env = append(os.Environ(), "HOME="+v.dir, "VAULT_DISABLE_MLOCK=true")
	var err error
	v.proc, err = startProcess(ctx, "vault", cmd, filepath.Join(v.dir, "vault.log"), 60*time.Second, func() bool {
		resp, err := http.Get(v.Addr() + "/v1/sys/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return err
}

// Stop ends the server; its in-memory data is lost.
func (v *Vault) Stop() {
	v.proc.stop(syscall.SIGTERM)
	v.proc = nil
}

// Close stops the server and removes its files.
func (v *Vault) Close() {
	v.Stop()
	_ = os.RemoveAll(v.dir)
}

// Addr is the server's http address.
func (v *Vault) Addr() string { return "http://" + hostPort(v.port) }

// Token is the root token.
func (v *Vault) Token() string { return v.token }

// Client returns an API client authenticated with the root token.
func (v *Vault) Client() (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr()
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(v.token)
	return c, nil
}

// EnableKV2 mounts a KV version 2 secrets engine at path (for example "ss3/kv").
func (v *Vault) EnableKV2(ctx context.Context, path string) error {
	c, err := v.Client()
	if err != nil {
		return err
	}
	err = c.Sys().MountWithContext(ctx, path, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	if err != nil {
		return fmt.Errorf("enable kv-v2 at %s: %w", path, err)
	}
	return nil
}
