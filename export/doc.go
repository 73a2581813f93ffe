// Package export writes the units of export jobs to where their
// destination says: files (NDJSON, CSV or Parquet) under the server's
// export directory, a PostgreSQL table, or a signed webhook.
//
// A unit is a run of stored events, seq ascending, that the work engine
// hands over in one piece. Writing the same unit again gives the same
// result (a file of the same name, replaced atomically; rows upserted by
// account and id; the same webhook-id), so that the engine, which saves
// its progress after each unit, may write a unit twice after a crash but
// never produces a duplicate.
package export
