package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/ss3dev/integration-operator/internal/signing"
)

// newReceiveCommand is a sample webhook receiver: it verifies each
// delivery's signature, prints one line per delivery, and can be told to
// fail, to watch retries and dead-lettering.
func newReceiveCommand() *cobra.Command {
	var listen, secretFile string
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "Run a sample webhook receiver that verifies signatures and prints deliveries",
		Long: `Run a sample receiver. The signing secret comes from --secret-file or
WEBHOOK_SECRET (for example from the subscription's <name>-signing-secret
Secret). POST /control/fail?status=500 makes it answer that status; POST
/control/ok restores 200.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret := os.Getenv("WEBHOOK_SECRET")
			if secretFile != "" {
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return err
				}
				secret = strings.TrimSpace(string(b))
			}
			if secret == "" {
				return errors.New("a signing secret is required (--secret-file or WEBHOOK_SECRET)")
			}
			return runReceiver(cmd.Context(), listen, secret, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9000", "address to listen on")
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "file holding the signing secret")
	return cmd
}

func runReceiver(ctx context.Context, listen, secret string, out io.Writer) error {
	var failStatus atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /control/fail", func(w http.ResponseWriter, r *http.Request) {
		status, err := strconv.Atoi(r.URL.Query().Get("status"))
		if err != nil || status < 300 || status > 599 {
			http.Error(w, "status must be 300-599", http.StatusBadRequest)
			return
		}
		failStatus.Store(int64(status))
	})
	mux.HandleFunc("POST /control/ok", func(http.ResponseWriter, *http.Request) { failStatus.Store(0) })
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read failed", http.StatusBadRequest)
			return
		}
		verdict := "signature=ok"
		if !signing.VerifySS3(secret, body, r.Header.Get("X-SS3-Signature")) {
			verdict = "signature=BAD"
		}
		status := int(failStatus.Load())
		if status == 0 {
			status = http.StatusOK
			if verdict != "signature=ok" {
				status = http.StatusUnauthorized
			}
		}
		fmt.Fprintf(out, "%s %s delivery=%s %s answered=%d body=%s\n", time.Now().UTC().Format(time.RFC3339),
			r.Header.Get("X-SS3-Event"), r.Header.Get("X-SS3-Delivery"), verdict, status, body)
		w.WriteHeader(status)
	})
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Fprintf(out, "receiving on http://%s\n", listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
