// Package ingest shares database commits between concurrent requests
// (group commit).
//
// Every stored event must be on disk before its request is answered, and a
// disk flush costs the same for one event as for a thousand. The Committer
// therefore queues the batches of concurrent requests and hands them to the
// store together, in one transaction: while one commit is flushing, the
// next group gathers. Under load the number of flushes per second stays
// flat while the events per flush grow.
package ingest
