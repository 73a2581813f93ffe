package notify

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/notify/notifytest"
)

// TestEmailStartTLS sends through a real SMTP server that offers AUTH
// only after STARTTLS: subject and text from a template's object, from a
// template's string and the target, or from the message's defaults.
func TestEmailStartTLS(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t)
	s := newSender(t, true)
	e := systemEvent(t, "disk full")
	for i, tc := range []struct {
		name, template, subject, text string
		msg                           Message
		wantSubject, wantText         string
		wantHTML                      string
	}{
		{name: "template object",
			template: `{subject: "Herald: %s %s" % [event.data.subject_id, event.data.verb], text: "Notes: " + event.data.notes + "\nCount: " + alert.count}`,
			subject:  "ignored", msg: Message{Event: e, Vars: delivery.Vars{Alert: []byte(`{"count": 3}`)}},
			wantSubject: "Herald: work-7 failed", wantText: "Notes: disk full\nCount: 3"},
		{name: "template string", template: `"%s: %s" % [event.data.subject_id, event.data.notes]`, subject: "Work failed",
			msg: Message{Event: e, Subject: "default"}, wantSubject: "Work failed", wantText: "work-7: disk full"},
		{name: "html", template: `{text: "plain", html: "<p>" + event.data.notes + "</p>"}`, msg: Message{Event: e, Subject: "With HTML"},
			wantSubject: "With HTML", wantText: "plain", wantHTML: "<p>disk full</p>"},
		{name: "defaults", msg: Message{Event: e, Subject: "Herald alert: failures", Text: "failures: 3 matching events within 1h\n"},
			wantSubject: "Herald alert: failures", wantText: "failures: 3 matching events within 1h"},
		{name: "one line subject", msg: Message{Subject: "two\r\nBcc: x@example.com", Text: "t"},
			wantSubject: "two Bcc: x@example.com", wantText: "t"},
	} {
		target := srv.Target("Herald Alerts <alerts@example.com>", "risk@example.com", "ops@example.com")
		target.JSONTemplate, target.Subject = tc.template, tc.subject
		tc.msg.ID = "run-1-" + strings.ReplaceAll(tc.name, " ", "-")
		res, err := s.Send(context.Background(), target, &tc.msg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mails := srv.Wait(t, i+1)
		m := mails[i]
		wantID := "<" + tc.msg.ID + "@example.com>"
		if m.From != "alerts@example.com" || strings.Join(m.To, ",") != "risk@example.com,ops@example.com" {
			t.Errorf("%s: envelope from %q to %q", tc.name, m.From, m.To)
		}
		if m.Subject != tc.wantSubject || m.Text != tc.wantText || m.HTML != tc.wantHTML {
			t.Errorf("%s: got subject %q text %q html %q\nwant subject %q text %q html %q", tc.name, m.Subject, m.Text, m.HTML, tc.wantSubject, tc.wantText, tc.wantHTML)
		}
		if m.MessageID != wantID || m.Header.Get("Bcc") != "" {
			t.Errorf("%s: Message-ID %q (want %q), Bcc %q", tc.name, m.MessageID, wantID, m.Header.Get("Bcc"))
		}
		if want := `{"messageId":"` + wantID + `","to":["risk@example.com","ops@example.com"]}`; string(res.Output) != want {
			t.Errorf("%s: output %s, want %s", tc.name, res.Output, want)
		}
	}
}

// TestEmailImplicitTLS: the tls mode speaks TLS from the first byte and
// authenticates inside it.
func TestEmailImplicitTLS(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t, notifytest.ImplicitTLS())
	target := srv.Target("alerts@example.com", "risk@example.com")
	if target.SMTP.TLS != herald.SMTPTLS {
		t.Fatalf("tls %q", target.SMTP.TLS)
	}
	if _, err := newSender(t, true).Send(context.Background(), target, &Message{ID: "a-f1", Subject: "s", Text: "over TLS"}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Wait(t, 1)[0]; m.Subject != "s" || m.Text != "over TLS" {
		t.Errorf("received %q %q", m.Subject, m.Text)
	}
}

// TestEmailResendSameMessageID: a retry of one message has the same
// Message-ID, so the receiving side can tell it is a repeat.
func TestEmailResendSameMessageID(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t)
	s := newSender(t, true)
	target := srv.Target("alerts@example.com", "risk@example.com")
	for range 2 {
		if _, err := s.Send(context.Background(), target, &Message{ID: "job 7/f#1", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	mails := srv.Wait(t, 2)
	if mails[0].MessageID != mails[1].MessageID || mails[0].MessageID != "<job_7/f#1@example.com>" {
		t.Errorf("Message-IDs %q and %q", mails[0].MessageID, mails[1].MessageID)
	}
}

// TestEmailWrongPassword: a 535 is permanent and its error does not
// hold the password.
func TestEmailWrongPassword(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t)
	target := srv.Target("alerts@example.com", "risk@example.com")
	target.SMTP.Password = "hunter2-wrong-password"
	res, err := newSender(t, true).Send(context.Background(), target, &Message{Text: "x"})
	if err == nil || !IsPermanent(err) {
		t.Fatalf("error %v, want permanent", err)
	}
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "535") {
		t.Errorf("error %q: want the 535 without the password", err)
	}
	if res == nil {
		t.Error("no result")
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d mails received", n)
	}
}

// TestEmailRejectedRecipient: a 550 is permanent, a 450 worth a retry.
func TestEmailRejectedRecipient(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t)
	srv.Reject("gone@example.com", 550)
	srv.Reject("full@example.com", 450)
	s := newSender(t, true)
	for _, tc := range []struct {
		to        string
		permanent bool
	}{{"gone@example.com", true}, {"full@example.com", false}} {
		_, err := s.Send(context.Background(), srv.Target("alerts@example.com", "risk@example.com", tc.to), &Message{Text: "x"})
		if err == nil || IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.to) {
			t.Errorf("%s: error %v, want permanent %v", tc.to, err, tc.permanent)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d mails received", n)
	}
}

// TestEmailServerDown: nobody listening is worth a retry.
func TestEmailServerDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	target := herald.Target{Kind: herald.TargetEmail, From: "a@example.com", To: []string{"b@example.com"},
		SMTP: &herald.SMTPConfig{Host: "127.0.0.1", Port: port, Username: "u", Password: "p4ssw0rd-down"}}
	_, err = newSender(t, true).Send(context.Background(), target, &Message{Text: "x"})
	if err == nil || IsPermanent(err) || strings.Contains(err.Error(), "p4ssw0rd") {
		t.Fatalf("error %v, want a retryable error", err)
	}
	if target.SMTP.TLS != "" {
		t.Error("Send changed the caller's SMTP settings")
	}
}

// TestEmailTimeout: a server that never greets is given up on at the
// context's deadline.
func TestEmailTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	target := herald.Target{Kind: herald.TargetEmail, From: "a@example.com", To: []string{"b@example.com"},
		SMTP: &herald.SMTPConfig{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = newSender(t, true).Send(ctx, target, &Message{Text: "x"})
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("error %v, want a retryable timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestEmailPrivateRefused: without AllowPrivate, the SMTP server on
// loopback is refused before connecting.
func TestEmailPrivateRefused(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t)
	_, err := newSender(t, false).Send(context.Background(), srv.Target("alerts@example.com", "risk@example.com"), &Message{Text: "x"})
	var blocked *delivery.BlockedAddressError
	if !errors.As(err, &blocked) || !strings.Contains(err.Error(), "loopback") || strings.Contains(err.Error(), srv.Password) {
		t.Fatalf("error %v, want a refused loopback address", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d mails received", n)
	}
}

// TestEmailCertificateChecked: the server's certificate is verified
// unless the target says not to.
func TestEmailCertificateChecked(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t)
	target := srv.Target("alerts@example.com", "risk@example.com")
	target.SMTP.InsecureSkipVerify = false
	_, err := newSender(t, true).Send(context.Background(), target, &Message{Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v, want an unverified certificate", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d mails received", n)
	}
}

// TestEmailBadInput: what no retry can mend.
func TestEmailBadInput(t *testing.T) {
	t.Parallel()
	srv := notifytest.NewSMTPServer(t)
	s := newSender(t, true)
	for name, change := range map[string]func(*herald.Target){
		"from":           func(t *herald.Target) { t.From = "not an address" },
		"to":             func(t *herald.Target) { t.To = []string{"nobody"} },
		"no recipients":  func(t *herald.Target) { t.To = nil },
		"no smtp":        func(t *herald.Target) { t.SMTP = nil },
		"template array": func(t *herald.Target) { t.JSONTemplate = `[1, 2]` },
		"template field": func(t *herald.Target) { t.JSONTemplate = `{subject: 7}` },
	} {
		target := srv.Target("alerts@example.com", "risk@example.com")
		change(&target)
		if _, err := s.Send(context.Background(), target, &Message{Text: "x"}); !IsPermanent(err) {
			t.Errorf("%s: error %v, want permanent", name, err)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d mails received", n)
	}
}

func TestMailMessageID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id, from, want string
	}{
		{"run-1-notify", "alerts@example.com", "run-1-notify@example.com"},
		{"w 1\u00e9<x>", "Ops <ops@mail.example.org>", "w_1__x_@mail.example.org"},
		{"..a..b.", "bad", "a.b@herald.invalid"},
	} {
		if got := mailMessageID(tc.id, tc.from); got != tc.want {
			t.Errorf("mailMessageID(%q, %q) = %q, want %q", tc.id, tc.from, got, tc.want)
		}
	}
}
