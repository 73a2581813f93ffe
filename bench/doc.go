// Package bench measures a running Herald server from the outside, over its
// HTTP API, the way a client fleet would load it. It is the engine of the
// `herald bench` command.
//
// Each benchmark (RunIngest, RunQuery, and later stream and delivery) takes
// the shared Options (server, key, concurrency, error budget, progress) plus
// its own, drives the server with Options.Concurrency workers, and returns a
// Report in one shape for all of them: operations done, throughput, request
// latency percentiles and failures. Report prints as a text table or as one
// JSON object, so the figures in BENCHMARKS.md can be produced by scripts.
//
// Latency is measured per request, from sending it to having read the whole
// response, and only for requests the server answered with 2xx; generating
// request bodies and decoding responses happen outside the timed span, so
// the numbers are the server's (plus the loopback network), not the
// client's. Percentiles are exact: every duration is kept (8 bytes a
// request) and sorted once at the end.
//
// A run stops early when its context is cancelled (the partial Report is
// returned with the error), when the server refuses the key (401/403), or
// when failures exceed Options.MaxErrorRate of the planned work.
package bench
