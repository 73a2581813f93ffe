package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald"
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
		api         apiFlags
		db, account string
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
		RunE: apiRunE(func(cmd *cobra.Command, _ []string) error {
			var (
				r   *herald.AuditReport
				err error
			)
			if db != "" {
				r, err = verifyInDatabase(cmd.Context(), db, account)
			} else {
				r, err = verifyOverHTTP(cmd.Context(), &api)
			}
			if err != nil {
				return err
			}
			printAuditReport(cmd.OutOrStdout(), r, api.json)
			if !r.Verified {
				return errChainBroken
			}
			return nil
		}),
	}
	f := cmd.Flags()
	api.registerConn(f)
	f.StringVar(&db, "db", "", "verify in this database instead: a SQLite file path or a postgres://… URL")
	f.StringVar(&account, "account", herald.DefaultAccountID, "with --db: the account to verify")
	f.BoolVar(&api.json, "json", false, "print the report as JSON")
	return cmd
}

// verifyOverHTTP asks the server to walk the chain, which for a long one
// takes a while: the timeout is generous.
func verifyOverHTTP(ctx context.Context, api *apiFlags) (*herald.AuditReport, error) {
	c, err := api.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	return c.VerifyAudit(ctx)
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
