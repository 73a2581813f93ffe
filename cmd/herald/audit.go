package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/bench"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Work with the audit log: Herald's chained system events",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAuditVerifyCmd())
	return cmd
}

// errChainBroken makes verify exit non-zero once it has printed the report.
var errChainBroken = errors.New("the audit chain is broken")

func newAuditVerifyCmd() *cobra.Command {
	var (
		url, key, db, account string
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk the audit chain and report the first broken link",
		Long: `Walk the account's system events in seq order, recompute each one's hash
from the previous hash and the event's canonical JSON (RFC 8785), and report
the first event where they differ: its seq, id and what differs.

By default it asks a running server (GET /v1/audit/verify) for the account of
--key. With --db it opens the database itself, for an operator who does not
want to trust the server: --account picks the account. It changes nothing,
unless the database is older than this herald, whose migrations it then
applies as serve would.

Exits 0 when the chain holds, 1 when it is broken or cannot be checked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				r   *herald.AuditReport
				err error
			)
			if db != "" {
				r, err = verifyInDatabase(cmd.Context(), db, account)
			} else {
				if key == "" {
					key = os.Getenv("HERALD_KEY")
				}
				r, err = verifyOverHTTP(cmd.Context(), url, key)
			}
			if err != nil {
				return err
			}
			printAuditReport(cmd.OutOrStdout(), r, asJSON)
			if !r.Verified {
				return errChainBroken
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", envDefault("HERALD_URL", bench.DefaultURL), "the server's base `URL` (env HERALD_URL)")
	f.StringVar(&key, "key", "", "API `key` (env HERALD_KEY)")
	f.StringVar(&db, "db", "", "verify in this database instead: a SQLite file path or a postgres://… URL")
	f.StringVar(&account, "account", herald.DefaultAccountID, "with --db: the account to verify")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func verifyOverHTTP(ctx context.Context, url, key string) (*herald.AuditReport, error) {
	if key == "" {
		return nil, errors.New("--key: no API key (pass --key or set HERALD_KEY)")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+"/v1/audit/verify", nil)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var p struct{ Title, Detail string }
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, p.Detail)
		}
		return nil, fmt.Errorf("HTTP %d from %s", resp.StatusCode, url)
	}
	var r herald.AuditReport
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", url, err)
	}
	return &r, nil
}

func verifyInDatabase(ctx context.Context, db, account string) (*herald.AuditReport, error) {
	if !strings.Contains(db, "://") {
		// Opening a SQLite file that is not there would create one.
		if _, err := os.Stat(db); err != nil {
			return nil, fmt.Errorf("--db: %w", err)
		}
	}
	s, _, err := openStore(ctx, serveConfig{DB: db}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.VerifyAudit(ctx, account)
}

func printAuditReport(w io.Writer, r *herald.AuditReport, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return
	}
	if r.Verified {
		fmt.Fprintf(w, "audit chain of account %s verified: %d system events, last seq %d, head %s\n",
			r.AccountID, r.Checked, r.LastSeq, r.Head)
		return
	}
	b := r.Break
	fmt.Fprintf(w, "audit chain of account %s BROKEN after %d good system events\n", r.AccountID, r.Checked)
	fmt.Fprintf(w, "  at seq %d", b.Seq)
	if b.ID != "" {
		fmt.Fprintf(w, ", event %s", b.ID)
	}
	fmt.Fprintf(w, "\n  %s\n", b.Reason)
	if b.Stored != "" || b.Computed != "" {
		fmt.Fprintf(w, "  stored hash   %s\n  computed hash %s\n", b.Stored, b.Computed)
	}
}
