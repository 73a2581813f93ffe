// Package client is the Go client of Herald's HTTP API.
//
// A Client sends events (one at a time, in batches, or buffered by a
// Producer), reads them back (Events pages through GET /v1/events, Stream
// follows GET /v1/events/stream), and manages event types, subscriptions,
// workflows, export and alert jobs and API keys, with the root package's
// types.
//
// Every answer that is not a 2xx comes back as an *Error carrying the
// problem details the server sent, the JSON Pointer of each field at fault
// included.
//
// Requests are retried on connection errors, 408, 429 (after the
// Retry-After the server asks for) and 5xx, with exponential backoff and
// jitter, a bounded number of times (WithRetries); never on another 4xx.
// That is safe for events because an event's id is its idempotency key: an
// event sent without one is given one (herald.NewEventID) before the first
// attempt, so a retry of a request whose answer was lost is a duplicate
// rather than a second event. Creating a subscription, a job or a key is
// not idempotent, so those are retried only when the server cannot have
// acted on the request: the connection was never made, or the answer was
// 408, 429 or 503.
package client
