package workflow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/notify"
)

// performStep performs one attempt of step (the idx-th of wf) for run,
// and returns its output.
func (e *Engine) performStep(run *herald.WorkflowRun, wf *herald.Workflow, idx int, step *herald.WorkflowStep, trigger *herald.Event) (json.RawMessage, *stepFailure) {
	ctx, cancel := context.WithTimeout(e.ctx, time.Duration(step.Timeout))
	defer cancel()
	steps := stepOutputs(run)
	if step.Input != "" {
		var fail *stepFailure
		if step, fail = e.applyInput(idx, step, trigger, steps); fail != nil {
			return nil, fail
		}
	}
	switch step.Kind {
	case herald.TargetWebhook, herald.TargetEmail, herald.TargetSlack:
		return e.send(ctx, run, wf, step, trigger, steps)
	case herald.StepSetAttributes:
		entity := step.Entity
		if entity == "" {
			entity = trigger.EntityID()
		}
		if entity == "" {
			return nil, permanentf("no entity to set attributes on: the triggering event %s names none (no coreCustomerId); set entity", trigger.ID)
		}
		if len(step.Attributes) == 0 {
			return nil, permanentf("no attributes to set")
		}
		return e.appendEvent(ctx, run, step, map[string]any{
			"category": "profiles", "type": "profileAttributesSet",
			"coreCustomerId": entity, "data": step.Attributes,
		})
	case herald.StepEmitEvent:
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(step.Event))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil || m == nil {
			return nil, permanentf("event must be an object: an event as a client sends it")
		}
		return e.appendEvent(ctx, run, step, m)
	case herald.StepEndSession:
		m := map[string]any{
			"category": "authentication", "type": "sessionEnded",
			"data": map[string]any{"reason": "ended by workflow " + wf.Name},
		}
		switch {
		case step.SessionID != "":
			m["sessionId"] = step.SessionID
		case trigger.SessionID != "":
			m["sessionId"] = trigger.SessionID
			if trigger.CoreCustomerID != "" {
				m["coreCustomerId"] = trigger.CoreCustomerID
			}
		default:
			return nil, permanentf("no session to end: the triggering event %s has no sessionId; set sessionId", trigger.ID)
		}
		return e.appendEvent(ctx, run, step, m)
	}
	return nil, permanentf("unknown step kind %q", step.Kind)
}

// applyInput runs step's input program and returns the step with the
// members of its output in place of the step's own.
func (e *Engine) applyInput(idx int, step *herald.WorkflowStep, trigger *herald.Event, steps json.RawMessage) (*herald.WorkflowStep, *stepFailure) {
	pointer := fmt.Sprintf("/steps/%d/input", idx)
	t, err := e.templates.CompileAt(pointer, step.Input)
	if err != nil {
		return nil, permanentf("%s", errorText(err))
	}
	out, err := t.RenderWith(trigger, delivery.Vars{Steps: steps})
	if err != nil {
		// The program, the event and the outputs are what they are: it
		// would fail again.
		return nil, permanentf("%s: %s", pointer, strings.TrimPrefix(err.Error(), "json_template: "))
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(out, &members); err != nil || members == nil {
		return nil, permanentf("%s: must return an object whose members replace the step's (such as {\"to\": [event.data.email]}), not %s", pointer, excerpt(out))
	}
	for _, k := range []string{"name", "kind", "input"} {
		if _, ok := members[k]; ok {
			return nil, permanentf("%s: may not set %q", pointer, k)
		}
	}
	if v, ok := members["webhook_url"]; ok {
		// The Lytics spelling: it must win over the step's url.
		if _, ok := members["url"]; !ok {
			members["url"] = v
		}
		delete(members, "webhook_url")
	}
	base, err := json.Marshal(step)
	if err != nil {
		return nil, permanentf("encode step: %v", err)
	}
	merged := map[string]json.RawMessage{}
	if err := json.Unmarshal(base, &merged); err != nil {
		return nil, permanentf("encode step: %v", err)
	}
	for k, v := range members {
		merged[k] = v
	}
	b, err := json.Marshal(merged)
	if err != nil {
		return nil, permanentf("encode step: %v", err)
	}
	ns := new(herald.WorkflowStep)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ns); err != nil {
		return nil, permanentf("%s: output does not fit the step: %v", pointer, err)
	}
	ns.Input = ""
	ns.Target.SetDefaults()
	prefix := fmt.Sprintf("/steps/%d", idx)
	switch ns.Kind {
	case herald.TargetWebhook, herald.TargetEmail, herald.TargetSlack:
		if errs := ns.Target.Validate(prefix); len(errs) > 0 {
			return nil, permanentf("input made the step invalid: %s: %s", errs[0].Pointer, errs[0].Detail)
		}
	case herald.StepSetAttributes:
		if len(ns.Attributes) == 0 {
			return nil, permanentf("input made the step invalid: %s/attributes: must set at least one attribute", prefix)
		}
	case herald.StepEmitEvent:
		var m map[string]json.RawMessage
		if json.Unmarshal(ns.Event, &m) != nil || m == nil {
			return nil, permanentf("input made the step invalid: %s/event: must be an object: an event as a client sends it", prefix)
		}
	}
	if len(ns.SessionID) > herald.MaxIDLength {
		return nil, permanentf("input made the step invalid: %s/sessionId: must be at most %d characters", prefix, herald.MaxIDLength)
	}
	return ns, nil
}

// send sends a webhook, email or Slack step's message.
func (e *Engine) send(ctx context.Context, run *herald.WorkflowRun, wf *herald.Workflow, step *herald.WorkflowStep, trigger *herald.Event, steps json.RawMessage) (json.RawMessage, *stepFailure) {
	body, err := json.Marshal(map[string]any{
		"workflow": wf.Name, "run": run.ID, "step": step.Name, "depth": run.Depth,
		"event": json.RawMessage(eventBody(trigger)), "steps": steps,
	})
	if err != nil {
		return nil, permanentf("encode message: %v", err)
	}
	m := &notify.Message{
		// Stable across attempts: the webhook-id a receiver dedupes by.
		ID:      run.ID + "-" + step.Name,
		Event:   trigger,
		Vars:    delivery.Vars{Steps: steps},
		Body:    body,
		Subject: fmt.Sprintf("Herald workflow %s: %s/%s", wf.Name, trigger.Category, trigger.Type),
		Text: fmt.Sprintf("Workflow %s ran for event %s (%s/%s), run %s.",
			wf.Name, trigger.ID, trigger.Category, trigger.Type, run.ID),
	}
	if wf.Secret != "" {
		m.Secrets = []string{wf.Secret}
	}
	res, err := e.sender.Send(ctx, step.Target, m)
	if err != nil {
		f := &stepFailure{err: err, permanent: notify.IsPermanent(err)}
		if res != nil {
			f.retryAfter = res.RetryAfter
		}
		return nil, f
	}
	if res == nil || len(res.Output) == 0 {
		return json.RawMessage(`{}`), nil
	}
	return res.Output, nil
}

// eventBody is e as stored.
func eventBody(e *herald.Event) []byte {
	if len(e.Body) > 0 {
		return e.Body
	}
	b, err := herald.MarshalEvent(e)
	if err != nil {
		return []byte("null")
	}
	return b
}

// appendEvent appends the event m describes (as a client sends it) on
// behalf of run: its agent is the run, whatever m says, and without an id
// it gets one derived from the run and the step, so that an attempt made
// again stores nothing new.
func (e *Engine) appendEvent(ctx context.Context, run *herald.WorkflowRun, step *herald.WorkflowStep, m map[string]any) (json.RawMessage, *stepFailure) {
	derived := false
	if id, ok := m["id"]; !ok || id == nil || id == "" {
		m["id"], derived = stepEventID(run, step), true
	}
	m["agentType"], m["agentId"] = herald.AgentTypeWorkflow, run.ID
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, permanentf("encode event: %v", err)
	}
	ev, err := herald.ParseEvent(buf.Bytes())
	if err != nil {
		return nil, permanentf("event: %s", errorText(err))
	}
	ev.Complete(e.opts.Now(), herald.OriginAPI, e.opts.NewID)
	ev.AccountID = run.AccountID
	if err := e.opts.Catalog.Prepare(ctx, run.AccountID, ev); err != nil {
		if !isPermanentAppend(err) {
			return nil, &stepFailure{err: fmt.Errorf("check event %s: %w", ev.ID, err)}
		}
		// Stored already by an earlier attempt, before its type
		// changed: the store answers it as a duplicate.
		stored, ferr := e.store.FindEventByID(ctx, run.AccountID, ev.ID)
		if ferr != nil || stored.Hash != ev.Hash {
			return nil, permanentf("event %s/%s: %s", ev.Category, ev.Type, errorText(err))
		}
	}
	if err := ev.PrepareBody(); err != nil {
		return nil, permanentf("encode event: %v", err)
	}
	b := &herald.AppendBatch{
		AccountID: run.AccountID,
		Events:    []*herald.Event{ev},
		By:        herald.Actor{Type: herald.AgentTypeWorkflow, ID: run.ID},
	}
	if err := e.opts.Appender.Append(ctx, b); err != nil {
		return nil, &stepFailure{err: fmt.Errorf("append event %s: %w", ev.ID, err), permanent: isPermanentAppend(err)}
	}
	if len(b.Results) != 1 {
		return nil, &stepFailure{err: fmt.Errorf("append event %s: the store returned %d results", ev.ID, len(b.Results))}
	}
	res := b.Results[0]
	seq := res.Seq
	switch code := herald.ErrorCode(res.Err); {
	case res.Err == nil:
	case code == herald.ECONFLICT && derived:
		// An earlier attempt stored the step's event with other content
		// (an input that read the time, say): the step was done.
		stored, err := e.store.FindEventByID(ctx, run.AccountID, ev.ID)
		if err != nil {
			return nil, &stepFailure{err: fmt.Errorf("find event %s stored by an earlier attempt: %w", ev.ID, err)}
		}
		seq = stored.Seq
	case code == herald.ECONFLICT:
		return nil, permanentf("event id %q is taken by an event with different content", ev.ID)
	default:
		return nil, &stepFailure{err: fmt.Errorf("append event %s: %s", ev.ID, errorText(res.Err)), permanent: isPermanentAppend(res.Err)}
	}
	out, err := json.Marshal(map[string]any{"eventId": ev.ID, "seq": seq})
	if err != nil {
		return nil, permanentf("encode output: %v", err)
	}
	return out, nil
}

// stepEventID is the id of the event a step appends: the run's id and the
// step's name, or a digest of the name when that would be too long.
func stepEventID(run *herald.WorkflowRun, step *herald.WorkflowStep) string {
	id := run.ID + "-" + step.Name
	if len(id) <= herald.MaxIDLength && herald.ValidID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(step.Name))
	return run.ID + "-" + hex.EncodeToString(sum[:12])
}

// excerpt is the start of a template's output, for an error message.
func excerpt(b []byte) string {
	const n = 80
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// errorText is err's message for a run's record: the user-facing message
// of a herald error, else the error itself.
func errorText(err error) string {
	if herald.ErrorCode(err) == herald.EINTERNAL {
		return err.Error()
	}
	return herald.ErrorMessage(err)
}
