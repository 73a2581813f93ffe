// Package delivery sends stored events to subscriptions' URLs as
// Standard Webhooks requests, at least once (DESIGN.md §5).
//
// The stored event log is the queue. An Engine leases subscriptions from
// the store and runs one deliverer per subscription it holds: it reads the
// log after the subscription's cursor, sends what matches the filter with a
// bounded number of requests in flight (or, in ordered mode, one at a time
// per lifecycle or entity), and saves what happened — attempts, messages
// to retry, the cursor — in batched commits that the lease guards. Failed
// events become messages retried on a schedule with jitter; a 410, or a
// subscription failing for too long, disables it.
//
// Signing (sign.go), the guarded HTTP client (client.go) and Jsonnet
// templates (template.go) are usable on their own: the API compiles a
// template to validate it, and a partner's code can verify with Verify.
package delivery
