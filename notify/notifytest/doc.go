// Package notifytest runs a real SMTP server for tests: STARTTLS (or TLS
// from the first byte) with a self-signed certificate, AUTH PLAIN with a
// username and password, and every accepted mail kept and parsed so a
// test can check its sender, recipients, subject and text.
//
// It is an ordinary package, not a _test file, so that the tests of the
// notify, work, workflow and cmd packages share one receiver instead of
// each writing its own.
package notifytest
