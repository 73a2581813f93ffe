// Package notify sends one message to a herald.Target: a signed webhook,
// a Slack incoming-webhook POST, or an email over SMTP. Workflow steps and
// alerts share it, so that a target behaves the same whichever sends to
// it: the same Jsonnet json_template (with event, steps and alert bound),
// the same guard against private addresses, and the same split of
// failures into those worth retrying and those that are not
// (PermanentError).
//
// Sending is at least once: a caller retries a retryable error with the
// same Message.ID, which is the webhook-id and the base of the email's
// Message-ID, so that a receiver can drop a repeat.
package notify
