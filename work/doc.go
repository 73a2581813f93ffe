// Package work runs the export and alert jobs (herald.Work, DESIGN.md §6):
// one goroutine per job this node leases, reading the event log from the
// job's cursor.
//
// An export runs cycles: a cycle is a range of the log (AfterSeq, UpTo]
// fixed when it starts and saved before its first unit is written, so
// that a cycle interrupted by a crash, a lost lease or a failure resumes
// where its last saved unit ended, with the same range: the same units
// come out (same file names, same webhook ids, same rows), and no event
// is exported twice or skipped. An alert counts the matching events in a
// window and sends a message through notify when the threshold is met.
//
// Jobs write the Lytics verbs as system events of subject type work:
// started (once, at the first run), syncing (a series of cycles starts:
// the first run, and the first after a pause or a failure), synced (per
// unit written, or per firing sent), synccomplete (per cycle), completed
// (a one-time export finished) and failed (a unit or a firing that could
// not be done after its retry schedule, with the reason in notes).
package work
