// Package mock holds hand-written fakes of the service interfaces of package
// herald, for tests of the packages that consume them (httpapi above all).
//
// Each fake has one function field per method, named after the method with
// an Fn suffix; the test sets the fields its case needs:
//
//	events := &mock.EventService{
//		FindEventsFn: func(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
//			return nil, nil
//		},
//	}
//
// Calling a method whose field is nil panics with a message that names the
// field, so a test that reaches an unexpected call fails loudly.
package mock
