package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/bench"
)

// benchFlags are the flags every `herald bench` subcommand shares, defined
// once as persistent flags of `bench`.
type benchFlags struct {
	url          string
	key          string
	concurrency  int
	timeout      time.Duration
	maxErrorRate float64
	json         bool
	quiet        bool
}

func newBenchCmd() *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a running Herald server over its HTTP API",
		Long: `Measure a running Herald server from the outside, as clients load it.

Each benchmark prints a report: the work done, its rate, request latency
(p50, p95, p99, max) and failures, as a table or, with --json, as one JSON
object. Progress goes to stderr every few seconds (--quiet to silence it).
Ctrl-C stops a run and prints the partial report.

A run stops with an error, and a non-zero exit, when the server refuses
the key or when more than --max-error-rate of the work fails.`,
		Args: cobra.NoArgs,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.url, "url", envDefault("HERALD_URL", bench.DefaultURL), "the server's base `URL` (env HERALD_URL)")
	// No default from the environment here: help would print the key.
	pf.StringVar(&f.key, "key", "", "API `key` (env HERALD_KEY)")
	pf.IntVar(&f.concurrency, "concurrency", bench.DefaultConcurrency, "clients, each with one request in flight")
	pf.DurationVar(&f.timeout, "timeout", bench.DefaultTimeout, "fail a request that takes longer than this")
	pf.Float64Var(&f.maxErrorRate, "max-error-rate", 0.01, "stop when more than this `fraction` of the work fails")
	pf.BoolVar(&f.json, "json", false, "print the report as one JSON object")
	pf.BoolVar(&f.quiet, "quiet", false, "print no progress on stderr")

	cmd.AddCommand(newBenchIngestCmd(f), newBenchQueryCmd(f), newBenchDeliveryCmd(f), newBenchStreamCmd(f))
	return cmd
}

func newBenchIngestCmd(f *benchFlags) *cobra.Command {
	var (
		o     bench.IngestOptions
		start string
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Send generated banking events and measure events/s and latency",
		Long: `Send generated banking events (logins, logouts, transfers, card
transactions with their lifecycles) and measure events/s and the latency of
each request. --batch 1 sends each event alone to POST /v1/events; more
sends batches to POST /v1/events/batch.

Event ids hold a random run id, so a rerun adds new events. To resend a
run's events and measure duplicates, pass its --run-id and --start (both in
the report).`,
		Example: `  # Batched ingest of a million events
  herald bench ingest --events 1000000 --batch 100 --concurrency 8

  # Single-event ingest from 64 clients
  herald bench ingest --events 200000 --batch 1 --concurrency 64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if start != "" {
				t, err := time.Parse(time.RFC3339Nano, start)
				if err != nil {
					return fmt.Errorf("--start: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", start)
				}
				o.Start = t
			}
			return f.run(cmd, func(ctx context.Context, shared bench.Options) (*bench.Report, error) {
				o.Options = shared
				return bench.RunIngest(ctx, o)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Events, "events", 100000, "events to send")
	fl.IntVar(&o.Batch, "batch", 100, "events per request (1: POST /v1/events; up to 1000: POST /v1/events/batch)")
	fl.BoolVar(&o.NDJSON, "ndjson", false, "send batches as application/x-ndjson")
	fl.IntVar(&o.Customers, "customers", bench.DefaultCustomers, "customers the events are spread over")
	fl.StringVar(&o.RunID, "run-id", "", "the `id` put in every event id (default random)")
	fl.BoolVar(&o.Unregistered, "unregistered", false, "send the events under type names the server does not know, so they are stored unvalidated (compare with a run without it to measure validation)")
	fl.StringVar(&start, "start", "", "occurredAt of the first event, an RFC 3339 `time` (default: so that the events end now)")
	return cmd
}

func newBenchQueryCmd(f *benchFlags) *cobra.Command {
	var o bench.QueryOptions
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Query stored events with filters and measure latency",
		Long: `Make GET /v1/events requests with filters and measure their latency,
overall and per filter. The filters rotate: by type, by coreCustomerId, by
eventLifecycleId, by type from a random seq, and paging by afterSeq.

The server must hold events (load them with herald bench ingest). A short
survey first finds the range of seq and samples real filter values, so each
query selects events rather than none.`,
		Example: `  herald bench ingest --events 1000000 --batch 100
  herald bench query --requests 10000 --concurrency 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, shared bench.Options) (*bench.Report, error) {
				o.Options = shared
				return bench.RunQuery(ctx, o)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Requests, "requests", 10000, "queries to make")
	fl.IntVar(&o.PageSize, "page-size", bench.DefaultPageSize, "limit of the paging queries")
	fl.Uint64Var(&o.Seed, "seed", 0, "seed for choosing filter values (default random)")
	return cmd
}

func newBenchDeliveryCmd(f *benchFlags) *cobra.Command {
	var o bench.DeliveryOptions
	cmd := &cobra.Command{
		Use:   "delivery",
		Short: "Measure webhook delivery: deliveries/s and ingest-to-receive latency",
		Long: `Start a local webhook receiver, subscribe it to the account's events,
send generated events in batches, and measure how fast they arrive signed at
the receiver (deliveries/s) and the time from the start of each event's
ingest request to its arrival (p50, p95, p99). The receiver verifies every
Standard Webhooks signature, as a partner would.

The server must be allowed to reach the receiver: for the default loopback
address, run it with --allow-private-targets. The subscription is deleted
at the end.`,
		Example: `  # Throughput: as fast as 4 clients send
  herald bench delivery --events 100000 --batch 100 --concurrency 4

  # Latency at an offered 1,000 events/s
  herald bench delivery --events 60000 --batch 10 --rate 1000

  # Delivery alone: drain a backlog of 100,000 events
  herald bench delivery --events 100000 --backlog`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, shared bench.Options) (*bench.Report, error) {
				o.Options = shared
				return bench.RunDelivery(ctx, o)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Events, "events", 50000, "events to send")
	fl.IntVar(&o.Batch, "batch", 100, "events per ingest request")
	fl.Float64Var(&o.Rate, "rate", 0, "offered load in events/s (0: as fast as --concurrency clients send)")
	fl.StringVar(&o.Receiver, "receiver", "127.0.0.1:0", "`address` of the local webhook receiver")
	fl.DurationVar(&o.Wait, "wait", time.Minute, "how long to wait for deliveries after the last event was sent")
	fl.IntVar(&o.MaxInFlight, "max-in-flight", 64, "the subscription's bound on requests under way")
	fl.StringVar(&o.RunID, "run-id", "", "the `id` put in every event id (default random)")
	fl.BoolVar(&o.Backlog, "backlog", false, "store the events with the subscription paused, then resume it and measure the drain alone (latency then runs from the resume)")
	return cmd
}

func newBenchStreamCmd(f *benchFlags) *cobra.Command {
	var o bench.StreamOptions
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Measure the live stream: events/s received and ingest-to-receive latency",
		Long: `Open the live stream (GET /v1/events/stream) for the account's client
events from now on, send generated events in batches, and measure how fast
they arrive on the stream (events/s received) and the time from the start
of each event's ingest request to its arrival (p50, p95, p99). The ingest
requests' own latency is in the breakdown.

The key needs the ingest and read scopes (an admin key has both).`,
		Example: `  # Throughput: as fast as 4 clients send batches of 100
  herald bench stream --events 100000 --batch 100 --concurrency 4

  # Latency at an offered 1,000 events/s
  herald bench stream --events 30000 --batch 10 --rate 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, shared bench.Options) (*bench.Report, error) {
				o.Options = shared
				return bench.RunStream(ctx, o)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Events, "events", 50000, "events to send")
	fl.IntVar(&o.Batch, "batch", 100, "events per ingest request")
	fl.Float64Var(&o.Rate, "rate", 0, "offered load in events/s (0: as fast as --concurrency clients send)")
	fl.DurationVar(&o.Wait, "wait", time.Minute, "how long to wait for events on the stream after the last was sent")
	fl.StringVar(&o.RunID, "run-id", "", "the `id` put in every event id (default random)")
	return cmd
}

// run runs one benchmark with the shared flags and prints its report, the
// partial one too when the run stopped early.
func (f *benchFlags) run(cmd *cobra.Command, benchmark func(context.Context, bench.Options) (*bench.Report, error)) error {
	// From here on an error is the run's, not a misuse of the command.
	cmd.SilenceUsage = true
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// main stops on these signals too; bench catches them itself so that a
	// run always ends with its partial report, whatever runs it.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	o := bench.Options{
		URL:          f.url,
		Key:          f.key,
		Concurrency:  f.concurrency,
		Timeout:      f.timeout,
		MaxErrorRate: f.maxErrorRate,
	}
	if o.Key == "" {
		o.Key = os.Getenv("HERALD_KEY")
	}
	if !f.quiet {
		o.Progress = cmd.ErrOrStderr()
		o.Terminal = benchIsTerminal(o.Progress)
	}

	rep, err := benchmark(ctx, o)
	if rep != nil {
		if werr := writeBenchReport(cmd.OutOrStdout(), rep, f.json); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func writeBenchReport(w io.Writer, rep *bench.Report, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rep)
	}
	return rep.WriteText(w)
}

func benchIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
