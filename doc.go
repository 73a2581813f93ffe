// Package herald holds Herald's domain: the event envelope, accounts and API
// keys, the error type, and the service interfaces that the stores
// (sqlite, postgres) implement and the HTTP API consumes.
//
// It imports nothing else of the project. Every other package either adapts
// one dependency to these interfaces (a database, HTTP, Prometheus) or wires
// them together (cmd/herald).
package herald
