package httpapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"github.com/heraldhq/herald"
)

// lyticsWorkflow is the Lytics workflow whose job config POST
// /v1/subscriptions, /v1/exports and /v1/alerts take as it is.
const lyticsWorkflow = "webhook_system_events"

// lyticsMembers are the members of a Lytics job body, and
// lyticsConfigMembers those of its config.
var (
	lyticsMembers       = []string{"config", "workflow"}
	lyticsConfigMembers = jsonNames(reflect.TypeFor[lyticsConfig]())
)

// lyticsConfig is the config of a Lytics webhook_system_events job.
type lyticsConfig struct {
	SystemEventType          string              `json:"system_event_type"`
	SystemEventMultipleTypes []string            `json:"system_event_multiple_types"`
	SystemEventSources       map[string][]string `json:"system_event_sources"`
	WebhookURL               string              `json:"webhook_url"`
	Headers                  json.RawMessage     `json:"headers"`
	JSONTemplate             string              `json:"json_template"`
}

// lyticsJob is what a Lytics job body asks for: the system events its
// filter keys select (origin system), sent to a URL with headers and a
// template. A subscription, an export and an alert are each made of one.
type lyticsJob struct {
	filter       herald.Filter
	url          string
	headers      map[string]string
	jsonTemplate string
}

// isLyticsJob reports whether a body is to be read as a Lytics job body:
// it has a config or a workflow member, which no Herald definition has.
func isLyticsJob(members map[string]json.RawMessage) bool {
	_, hasConfig := members["config"]
	_, hasWorkflow := members["workflow"]
	return hasConfig || hasWorkflow
}

// decodeLyticsJob decodes a Lytics job body, {"config": {...}, "workflow":
// "webhook_system_events"}. It returns nil, with the errors, when the
// body is too far off to check further.
func decodeLyticsJob(members map[string]json.RawMessage) (*lyticsJob, []herald.FieldError) {
	errs := checkMembers(members, "", lyticsMembers, func(string) string {
		return "unknown field (a Lytics job body has only config and workflow)"
	})
	var workflow string
	raw, ok := members["workflow"]
	switch {
	case !ok:
		errs = append(errs, herald.FieldError{Pointer: "/workflow", Detail: fmt.Sprintf("is required: %q", lyticsWorkflow)})
	case decodeAt(raw, "/workflow", &workflow) != nil || workflow != lyticsWorkflow:
		errs = append(errs, herald.FieldError{Pointer: "/workflow", Detail: fmt.Sprintf("must be %q, the Lytics workflow Herald takes", lyticsWorkflow)})
	}
	var c lyticsConfig
	raw, ok = members["config"]
	if !ok {
		errs = append(errs, herald.FieldError{Pointer: "/config", Detail: "is required: the job's config, with webhook_url and the filter keys"})
		return nil, errs
	}
	config, fe := decodeObject(raw, "/config")
	if fe != nil {
		return nil, append(errs, *fe)
	}
	if cErrs := checkMembers(config, "/config", lyticsConfigMembers, func(string) string {
		return "unknown field (a webhook_system_events config has " + strings.Join(lyticsConfigMembers, ", ") + ")"
	}); len(cErrs) > 0 {
		return nil, append(errs, cErrs...)
	}
	if fe := decodeAt(raw, "/config", &c); fe != nil {
		return nil, append(errs, *fe)
	}
	headers, hErrs := decodeHeaders(c.Headers, "/config/headers")
	errs = append(errs, hErrs...)
	return &lyticsJob{
		url:          c.WebhookURL,
		headers:      headers,
		jsonTemplate: c.JSONTemplate,
		filter: herald.Filter{
			SystemEventType:          c.SystemEventType,
			SystemEventMultipleTypes: c.SystemEventMultipleTypes,
			SystemEventSources:       c.SystemEventSources,
			Origin:                   herald.OriginSystem,
		},
	}, errs
}

// decodeLytics decodes a Lytics job body into the subscription it stands
// for: its filter keys select system events (origin system), and
// webhook_url, headers and json_template are the subscription's own.
func decodeLytics(members map[string]json.RawMessage) (*herald.Subscription, []herald.FieldError) {
	job, errs := decodeLyticsJob(members)
	if job == nil {
		return nil, errs
	}
	return &herald.Subscription{URL: job.url, Headers: job.headers, JSONTemplate: job.jsonTemplate, Filter: job.filter}, errs
}

// lyticsExport is the export a Lytics job body stands for on POST
// /v1/exports: a stream of the selected system events to the webhook,
// one request per event, so that a template written for one event (the
// Slack ones of the Lytics documentation) makes each request's body.
func lyticsExport(job *lyticsJob) *herald.Work {
	return &herald.Work{
		Kind:   herald.WorkExport,
		Filter: job.filter,
		Export: &herald.ExportConfig{
			Mode:      herald.ExportStream,
			BatchSize: 1,
			Destination: herald.Destination{
				Type: herald.DestinationWebhook, URL: job.url, Headers: job.headers, JSONTemplate: job.jsonTemplate,
			},
		},
	}
}

// lyticsAlert is the alert a Lytics job body stands for on POST
// /v1/alerts: it fires on every selected system event (threshold 1) and
// posts to the URL, as a Slack message when it is a Slack incoming
// webhook's.
func lyticsAlert(job *lyticsJob) *herald.Work {
	kind := herald.TargetWebhook
	if u, err := url.Parse(job.url); err == nil && strings.EqualFold(u.Hostname(), "hooks.slack.com") {
		kind = herald.TargetSlack
	}
	return &herald.Work{
		Kind:   herald.WorkAlert,
		Filter: job.filter,
		Alert: &herald.AlertConfig{
			Threshold: 1,
			Target:    herald.Target{Kind: kind, URL: job.url, Headers: job.headers, JSONTemplate: job.jsonTemplate},
		},
	}
}

// pointerMoves name the fields of a definition made from a Lytics job
// body where that body has them: the first move whose from prefixes a
// pointer replaces that prefix with its to.
type pointerMoves []struct{ from, to string }

func (m pointerMoves) move(pointer string) string {
	for _, mv := range m {
		if rest, ok := strings.CutPrefix(pointer, mv.from); ok {
			return mv.to + rest
		}
	}
	return pointer
}

// Where a Lytics job body has the fields of a subscription, an export and
// an alert.
var (
	lyticsSubscriptionPointers = pointerMoves{
		{"/url", "/config/webhook_url"},
		{"/filter/", "/config/"},
		{"/headers", "/config/headers"},
		{"/json_template", "/config/json_template"},
	}
	lyticsExportPointers = pointerMoves{
		{"/export/destination/url", "/config/webhook_url"},
		{"/filter/", "/config/"},
		{"/export/destination/headers", "/config/headers"},
		{"/export/destination/json_template", "/config/json_template"},
	}
	lyticsAlertPointers = pointerMoves{
		{"/alert/target/url", "/config/webhook_url"},
		{"/filter/", "/config/"},
		{"/alert/target/headers", "/config/headers"},
		{"/alert/target/json_template", "/config/json_template"},
	}
)
