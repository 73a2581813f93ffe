// Command herald runs the Herald event platform (`herald serve`) and the
// tools around it: a command line over the HTTP API (send, import, events,
// types, subscriptions, workflows, work, keys, audit) and `herald bench`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if errors.Is(err, errReported) {
		os.Exit(1) // the command printed the error itself
	}
	if err != nil {
		// A herald.Error names its code and message, which is what a user
		// of the command needs; its own "herald:" prefix is said once.
		msg := err.Error()
		if e := (*herald.Error)(nil); errors.As(err, &e) {
			msg = herald.ErrorMessage(err)
		}
		fmt.Fprintln(os.Stderr, "herald:", msg)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "herald",
		Short: "Herald keeps an exact record of events and tells other systems about them",
		Long: `Herald is an event platform: applications send it events, Herald validates
and stores them as an immutable history, and serves them back through an HTTP API.

Start a server with embedded storage in ./herald-data:

  herald serve

herald serve takes:
  --addr   address to listen on (env HERALD_ADDR, default 127.0.0.1:8080)
  --data   folder for local data (env HERALD_DATA, default ./herald-data)
  --db     a SQLite file path or a postgres://… URL (env HERALD_DB,
           default <data>/herald.db)

The other commands talk to a running server over its HTTP API; give them
its URL and a key with --url and --key, or HERALD_URL and HERALD_KEY:

  export HERALD_URL=http://127.0.0.1:8080 HERALD_KEY=$(cat herald-data/bootstrap.key)
  herald send --category authentication --type userLoggedIn --customer cust-42
  herald import events.ndjson
  herald events tail --types 'transactions/*'

Every flag of every command can also be set from the environment variable
named in its help: see herald serve --help. Shell completion: herald
completion bash|zsh|fish.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newBenchCmd(), newAuditCmd())
	root.AddCommand(newSendCmd(), newImportCmd(), newEventsCmd(), newTypesCmd(), newSubscriptionsCmd(),
		newWorkflowsCmd(), newWorkCmd(), newAlertsCmd(), newExportsCmd(), newKeysCmd())
	return root
}

// envDefault returns the value of the environment variable name, or def.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
