// Package lease keeps the workers of what a node leases from the store.
//
// Subscriptions, workflows and work jobs are shared by the nodes of one
// database through leases: each node renews what it holds and takes what
// is free, and runs one worker goroutine per item it holds. A Keeper is
// that loop, once for every engine (delivery, workflow, work): it renews
// the leases every third of their time to live, or at once on Refresh,
// starts a worker for each item newly held, stops the workers of items
// no longer held, and replaces a worker that exited or cannot take on
// the item as leased again. A worker stopped is kept until it exits, so
// that its successor can wait for it to finish saving and go on from
// where it stopped.
package lease
