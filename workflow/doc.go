// Package workflow runs workflows (DESIGN.md §6): it reads the event log
// for the events that trigger each workflow, stores a run per triggering
// event, and performs the runs' steps: messages sent through notify
// (webhook, email, Slack) and events appended (attributes set, an event
// emitted, a session ended).
//
// Both halves share the work between the nodes of one database through
// leases: each workflow's trigger reader runs on the one node that holds
// the workflow's lease, and each run is performed by the node that
// claimed it. A node that dies leaves its leases to run out; another
// takes them over and performs the step that was under way again, so a
// step is performed at least once. Events a step appends carry an id
// derived from the run and the step, so that appending one again stores
// nothing new.
//
// Chains of runs (a run emits an event that triggers another) are
// bounded by the workflow's maxDepth: the run that would go deeper is
// stored failed, with a clear error and a "workflow failed" system event.
package workflow
