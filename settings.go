package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// UnknownTypes settings.
const (
	UnknownTypesAccept = "accept"
	UnknownTypesReject = "reject"
)

// Settings are an account's choices about how Herald treats its events.
// Stored settings are decoded over DefaultSettings, so a field added in a
// later version takes its default for accounts that never set it.
type Settings struct {
	// UnknownTypes says what happens to events of types that are not
	// registered: UnknownTypesAccept stores them unvalidated,
	// UnknownTypesReject refuses them. Empty means accept.
	UnknownTypes string `json:"unknownTypes"`
	// Sessions says which events start and end sessions and when an idle
	// or long session ends.
	Sessions SessionSettings `json:"sessions"`
	// Visits says how long a pause ends a visit.
	Visits VisitSettings `json:"visits"`
	// JourneyEvents switches each kind of journey system event on or off.
	// The audit of changes made through the API cannot be switched off.
	JourneyEvents JourneyEvents `json:"journeyEvents"`
}

// SessionSettings say how sessions begin and end.
type SessionSettings struct {
	// LoginTypes are the "category/type" names of the events that start a
	// session; LogoutTypes of those that end one.
	LoginTypes  []string `json:"loginTypes"`
	LogoutTypes []string `json:"logoutTypes"`
	// InactivityTimeout ends a session with no event for that long;
	// MaxLength ends one that long after it started, active or not.
	InactivityTimeout Duration `json:"inactivityTimeout"`
	MaxLength         Duration `json:"maxLength"`
}

// VisitSettings say when a visit ends.
type VisitSettings struct {
	// Timeout ends a visit when its entity has had no event for that long.
	Timeout Duration `json:"timeout"`
}

// JourneyEvents switches the journey system events. All are on unless
// the account turns them off.
type JourneyEvents struct {
	ProfileCreated    bool `json:"profileCreated"`
	SessionStarted    bool `json:"sessionStarted"`
	SessionEnded      bool `json:"sessionEnded"`
	SessionTerminated bool `json:"sessionTerminated"`
	VisitStarted      bool `json:"visitStarted"`
	VisitEnded        bool `json:"visitEnded"`
}

// Defaults of the session and visit settings.
const (
	DefaultSessionTimeout   = 30 * time.Minute
	DefaultSessionMaxLength = 12 * time.Hour
	DefaultVisitTimeout     = 30 * time.Minute
)

// Bounds of the session and visit durations.
const (
	MinJourneyDuration = time.Second
	MaxJourneyDuration = 30 * 24 * time.Hour
)

// DefaultSettings are the settings of an account that has changed none.
func DefaultSettings() *Settings {
	return &Settings{
		UnknownTypes: UnknownTypesAccept,
		Sessions: SessionSettings{
			LoginTypes:        []string{"authentication/userLoggedIn"},
			LogoutTypes:       []string{"authentication/userLoggedOut", "authentication/sessionEnded"},
			InactivityTimeout: Duration(DefaultSessionTimeout),
			MaxLength:         Duration(DefaultSessionMaxLength),
		},
		Visits: VisitSettings{Timeout: Duration(DefaultVisitTimeout)},
		JourneyEvents: JourneyEvents{
			ProfileCreated: true, SessionStarted: true, SessionEnded: true,
			SessionTerminated: true, VisitStarted: true, VisitEnded: true,
		},
	}
}

// DecodeSettings decodes stored or sent settings over DefaultSettings.
func DecodeSettings(b []byte) (*Settings, error) {
	s := DefaultSettings()
	if len(b) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks the settings, naming the field at fault.
func (s *Settings) Validate() error {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
	}
	switch s.UnknownTypes {
	case UnknownTypesAccept, UnknownTypesReject:
	default:
		fail("/unknownTypes", "must be %q or %q", UnknownTypesAccept, UnknownTypesReject)
	}
	for _, list := range []struct {
		name  string
		names []string
	}{{"loginTypes", s.Sessions.LoginTypes}, {"logoutTypes", s.Sessions.LogoutTypes}} {
		for i, n := range list.names {
			if c, t, ok := strings.Cut(n, "/"); !ok || c == "" || t == "" || strings.Contains(t, "/") {
				fail(fmt.Sprintf("/sessions/%s/%d", list.name, i), "must be a \"category/type\" name")
			}
		}
	}
	for _, n := range s.Sessions.LoginTypes {
		if slices.Contains(s.Sessions.LogoutTypes, n) {
			fail("/sessions/logoutTypes", "%q is also a login type", n)
		}
	}
	for _, d := range []struct {
		pointer string
		value   Duration
	}{
		{"/sessions/inactivityTimeout", s.Sessions.InactivityTimeout},
		{"/sessions/maxLength", s.Sessions.MaxLength},
		{"/visits/timeout", s.Visits.Timeout},
	} {
		if v := time.Duration(d.value); v < MinJourneyDuration || v > MaxJourneyDuration {
			fail(d.pointer, "must be between %s and %s", MinJourneyDuration, MaxJourneyDuration)
		}
	}
	if len(errs) > 0 {
		return &Error{Code: EINVALID, Message: errs[0].Pointer + ": " + errs[0].Detail, Fields: errs}
	}
	return nil
}

// isType reports whether names holds category/typ.
func isType(names []string, category, typ string) bool {
	for _, n := range names {
		if c, t, _ := strings.Cut(n, "/"); c == category && t == typ {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written in JSON as Go writes durations:
// "30m", "12h", "1h30m".
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30m\" or \"12h\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30m\" or \"12h\"", s)
	}
	*d = Duration(v)
	return nil
}

// SettingsService stores account settings.
type SettingsService interface {
	// FindSettings returns the account's settings, DefaultSettings if it
	// has changed none, and ENOTFOUND if there is no such account.
	FindSettings(ctx context.Context, accountID string) (*Settings, error)
	// PutSettings replaces the account's settings, and writes the
	// settings updated system event in the same commit; ENOTFOUND if
	// there is no such account.
	PutSettings(ctx context.Context, accountID string, s *Settings) error
}
