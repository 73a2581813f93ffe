// Package catalog is where Herald learns what an account's events mean:
// it merges the built-in event types with the ones an account defines,
// compiles each type's JSON Schema once (santhosh-tekuri/jsonschema), and
// prepares every ingested event against its type — data checked against
// the schema, eventStatus against the allowed values, eventLifecycleId
// taken from the type's pointer — before the store sees it.
//
// Schemas follow JSON Schema 2020-12 unless they name another draft with
// $schema, and format is asserted. A schema may refer only to itself and to
// the JSON Schema meta-schemas: nothing is loaded from the server's files
// or from the network.
//
// The catalog caches each account's types and settings for a short time;
// changes made through it are seen at once on the node that made them, and
// within the cache's time to live on the others.
package catalog
