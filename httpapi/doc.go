// Package httpapi serves Herald's HTTP API: the /v1 routes for accounts,
// keys, events, event types and settings, lifecycles, profiles, sessions,
// visits, the audit log, webhook subscriptions (with their secrets,
// attempts, messages and stats), workflows (with their runs) and export and
// alert jobs (with their history), the health and metrics endpoints and the
// OpenAPI document that describes them. Delivering to the subscriptions,
// running the workflows and the jobs are other packages' work; httpapi
// only checks a definition's templates (Config.CompileTemplate,
// Config.CompileTemplateAt) and an export's destination
// (Config.CheckDestination), and tells the engines of a change
// (Config.WorkflowsChanged, Config.WorkChanged).
//
// It adapts HTTP to the service interfaces of package herald and owns what
// belongs to HTTP alone: authentication by bearer key (with a short-lived
// cache of key lookups), the mapping of herald.Error codes to statuses and
// RFC 9457 problem details, request ids, one log line per request and the
// request metrics. It talks to no database: everything it stores or reads
// goes through the service interfaces of package herald, an Appender, and
// the catalog, which checks each ingested event against its type. Every
// authenticated request carries its key as the actor
// (herald.NewContextWithActor), so that the system events a store writes
// for it name the key.
//
// Conventions every route follows:
//
//   - Every 4xx and 5xx answer is application/problem+json. Its errors
//     member lists the fields at fault: "pointer" is a JSON Pointer (RFC 6901)
//     into the request body, or "?name" for the query parameter name
//     ("?name/…" for a place within a parameter whose value is JSON or a
//     list, such as ?system_event_sources/work/0).
//   - An unknown query parameter is refused with 400, like an unknown field.
//   - A definition's secrets (SMTP passwords, header values, a DSN's
//     password) are never answered: they show as herald.Redacted (a DSN
//     masked), and sent back so on a replace, the stored ones are kept.
//   - A 500 shows only "internal error (ref …)"; the request's log line
//     carries the same ref and the real error.
package httpapi
