package bench

import (
	"strconv"
	"time"
)

// The event types the generator makes, as category/type.
var generatedTypes = []struct{ category, typ string }{
	{"authentication", "userLoggedIn"},
	{"authentication", "userLoggedOut"},
	{"transfers", "singleTransferCreated"},
	{"transactions", "transaction"},
}

// generator makes the banking events of one ingest run. Event i is a pure
// function of (run, seed, i), so any worker can make any event and a rerun
// with the same run id sends the same events again.
//
// Events come in pairs, 2j and 2j+1, that share a customer, an agent and a
// session, as they would in a bank: a login then its logout, a card
// transaction pending then approved (one lifecycle), or two transfers made
// in one session.
//
// Bodies are built by appending to a byte slice: every string written is
// made here from letters, digits and a few punctuation marks, so none
// needs JSON escaping, and one event costs about a microsecond.
type generator struct {
	run       string    // run id: part of every event id, so runs differ
	seed      uint64    // from the run id
	customers int       // size of the customer pool
	start     time.Time // occurredAt of event 0
	// typeSuffix is added to every type name: with one, the events are of
	// types the server does not know, and are stored unvalidated.
	typeSuffix string
}

// eventSpacing separates the occurredAt of consecutive events.
const eventSpacing = time.Millisecond

func newGenerator(run string, customers int, start time.Time) *generator {
	var seed uint64 = 14695981039346656037 // FNV-1a of the run id
	for i := 0; i < len(run); i++ {
		seed = (seed ^ uint64(run[i])) * 1099511628211
	}
	return &generator{
		run:       run,
		seed:      seed,
		customers: customers,
		start:     start.UTC(),
	}
}

// appendCustomerID appends the coreCustomerId of customer n of the pool.
func appendCustomerID(b []byte, n int) []byte {
	b = append(b, "CUS"...)
	return appendPadded(b, uint64(n)+1, 8)
}

// Kinds of pair, chosen by the pair's hash: 40% sessions, 20% transfers,
// 40% card transactions.
func pairKind(h uint64) int {
	switch h % 10 {
	case 0, 1, 2, 3:
		return 0 // login, logout
	case 4, 5:
		return 2 // two transfers
	default:
		return 3 // transaction pending, approved
	}
}

var (
	channels   = []string{"mobile", "web", "mobile", "branch"}
	userAgents = []string{
		"HeraldBank/6.3.1 (Android 14; Pixel 8)",
		"HeraldBank/6.3.0 (iOS 17.4; iPhone15,2)",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1",
	}
	places = []struct{ country, city string }{
		{"DE", "Berlin"}, {"DE", "Hamburg"}, {"NL", "Amsterdam"}, {"FR", "Paris"},
		{"ES", "Madrid"}, {"IT", "Milan"}, {"AT", "Vienna"}, {"BE", "Brussels"},
	}
	merchants = []struct{ name, mcc string }{
		{"Rewe Markt", "5411"}, {"Shell Station", "5541"}, {"Deutsche Bahn", "4112"},
		{"Amazon EU", "5999"}, {"Lidl", "5411"}, {"Ikea", "5712"}, {"Cafe Central", "5814"},
		{"Apotheke am Markt", "5912"},
	}
	payees = []string{
		"Fischer Logistik GmbH", "Stadtwerke Nord", "Jansen Verhuur BV", "Hausverwaltung Klein",
		"Moreau et Fils SARL", "Rossi Costruzioni", "Allianz Versicherung", "Finanzamt Mitte",
	}
)

// appendEvent appends event i as JSON.
func (g *generator) appendEvent(b []byte, i int) []byte {
	j, step := uint64(i/2), i%2
	h := mix(g.seed ^ j)           // the pair's
	v := mix(h + uint64(step) + 1) // this event's
	kind := pairKind(h)
	if kind == 0 && step == 1 {
		kind = 1 // the session's logout
	}
	cust := int((h >> 8) % uint64(g.customers))
	place := places[(h>>16)%uint64(len(places))]
	channel := channels[(h>>20)%uint64(len(channels))]
	// Most events are a customer's own doing; some a clerk's in a branch,
	// a few the bank's systems'.
	agent := (h >> 24) % 20
	if agent >= 16 && agent < 19 {
		channel = "branch"
	}

	b = append(b, `{"id":"bench-`...)
	b = append(b, g.run...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","category":"`...)
	b = append(b, generatedTypes[kind].category...)
	b = append(b, `","type":"`...)
	b = append(b, generatedTypes[kind].typ...)
	b = append(b, g.typeSuffix...)
	b = append(b, `","occurredAt":"`...)
	b = g.start.Add(time.Duration(i)*eventSpacing).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")

	switch {
	case agent < 16:
		b = append(b, `","agentId":"u-`...)
		b = appendCustomerID(b, cust)
		b = append(b, `","agentType":"customer`...)
	case agent < 19:
		b = append(b, `","agentId":"emp-`...)
		b = appendPadded(b, (h>>32)%400, 4)
		b = append(b, `","agentType":"employee`...)
	default:
		b = append(b, `","agentId":"svc-core-banking","agentType":"system`...)
	}
	b = append(b, `","coreCustomerId":"`...)
	b = appendCustomerID(b, cust)
	b = append(b, `","customerSerialId":"CSN`...)
	b = appendPadded(b, uint64(cust)*7919%1000000, 6)
	b = append(b, `","host":"core-api-`...)
	b = strconv.AppendUint(b, (h>>40)%6+1, 10)
	b = append(b, `.eu-west.bank.internal","primaryId":"`...)
	switch kind {
	case 0, 1:
		b = append(b, "LGN-"...)
		b = append(b, g.run...)
		b = append(b, '-')
		b = strconv.AppendUint(b, j, 10)
	case 2:
		b = append(b, "TRF-"...)
		b = append(b, g.run...)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(i), 10)
	case 3:
		b = append(b, "TXN-"...)
		b = append(b, g.run...)
		b = append(b, '-')
		b = strconv.AppendUint(b, j, 10)
	}
	b = append(b, `","secondaryId":"`...)
	b = appendAccount(b, cust)
	b = append(b, `","sessionId":"sess-`...)
	b = append(b, g.run...)
	b = append(b, '-')
	b = strconv.AppendUint(b, j, 10)
	if kind == 3 {
		b = append(b, `","eventStatus":"`...)
		switch {
		case step == 0:
			b = append(b, "pending"...)
		case v%25 == 0:
			b = append(b, "denied"...)
		default:
			b = append(b, "approved"...)
		}
		b = append(b, `","eventLifecycleId":"lc-`...)
		b = append(b, g.run...)
		b = append(b, '-')
		b = strconv.AppendUint(b, j, 10)
	}
	b = append(b, `","data":`...)

	switch kind {
	case 0, 1:
		b = append(b, `{"channel":"`...)
		b = append(b, channel...)
		if kind == 0 {
			b = append(b, `","authMethod":"`...)
			if v%3 == 0 {
				b = append(b, "biometric"...)
			} else {
				b = append(b, "password+otp"...)
			}
			b = append(b, `","mfa":true,"loginAttempt":`...)
			b = strconv.AppendUint(b, v%3+1, 10)
			b = append(b, `,"riskScore":`...)
			b = strconv.AppendUint(b, v%100, 10)
		} else {
			b = append(b, `","reason":"`...)
			if v%4 == 0 {
				b = append(b, "sessionTimeout"...)
			} else {
				b = append(b, "userInitiated"...)
			}
			b = append(b, `","sessionDurationSeconds":`...)
			b = strconv.AppendUint(b, 30+v%3600, 10)
			b = append(b, `,"pagesViewed":`...)
			b = strconv.AppendUint(b, 1+v%40, 10)
		}
		b = append(b, `,"ipAddress":"10.`...)
		b = strconv.AppendUint(b, (h>>8)&0xff, 10)
		b = append(b, '.')
		b = strconv.AppendUint(b, (h>>16)&0xff, 10)
		b = append(b, '.')
		b = strconv.AppendUint(b, (h>>24)&0xff, 10)
		b = append(b, `","userAgent":"`...)
		b = append(b, userAgents[(h>>28)%uint64(len(userAgents))]...)
		b = append(b, `","deviceId":"dev-`...)
		b = strconv.AppendUint(b, h>>36, 16)
		b = append(b, `","geo":{"country":"`...)
		b = append(b, place.country...)
		b = append(b, `","city":"`...)
		b = append(b, place.city...)
		b = append(b, `"},"locale":"en-GB","appVersion":"6.3.1"}`...)
	case 2:
		b = append(b, `{"amount":"`...)
		b = appendAmount(b, 500+v%2500000)
		b = append(b, `","currency":"EUR","debtorAccount":"`...)
		b = appendIBAN(b, place.country, uint64(cust))
		b = append(b, `","creditorAccount":"`...)
		b = appendIBAN(b, places[(v>>8)%uint64(len(places))].country, v>>16)
		b = append(b, `","creditorName":"`...)
		b = append(b, payees[(v>>40)%uint64(len(payees))]...)
		b = append(b, `","reference":"INV-`...)
		b = appendPadded(b, (v>>20)%1000000, 6)
		b = append(b, `","scheme":"`...)
		if v%5 == 0 {
			b = append(b, "SEPA_INST"...)
		} else {
			b = append(b, "SEPA_CT"...)
		}
		b = append(b, `","executionDate":"`...)
		b = g.start.Add(time.Duration(i)*eventSpacing).AppendFormat(b, "2006-01-02")
		b = append(b, `","channel":"`...)
		b = append(b, channel...)
		b = append(b, `","purposeCode":"GDDS"}`...)
	case 3:
		m := merchants[(h>>12)%uint64(len(merchants))]
		b = append(b, `{"amount":"`...)
		b = appendAmount(b, 100+(h>>4)%25000)
		b = append(b, `","currency":"EUR","direction":"debit","external_transaction_id":"lc-`...)
		b = append(b, g.run...)
		b = append(b, '-')
		b = strconv.AppendUint(b, j, 10)
		b = append(b, `","merchant":{"name":"`...)
		b = append(b, m.name...)
		b = append(b, `","mcc":"`...)
		b = append(b, m.mcc...)
		b = append(b, `","city":"`...)
		b = append(b, place.city...)
		b = append(b, `","country":"`...)
		b = append(b, place.country...)
		b = append(b, `"},"cardId":"card-`...)
		b = appendPadded(b, uint64(cust)*31%10000000, 7)
		b = append(b, `","cardLast4":"`...)
		b = appendPadded(b, (h>>44)%10000, 4)
		b = append(b, `","authCode":"A`...)
		b = strconv.AppendUint(b, (h>>20)%0xfffff, 36)
		b = append(b, `","accountId":"`...)
		b = appendAccount(b, cust)
		b = append(b, `","posEntryMode":"`...)
		if h%3 == 0 {
			b = append(b, "chip"...)
		} else {
			b = append(b, "contactless"...)
		}
		b = append(b, `","balanceAfter":"`...)
		b = appendAmount(b, (h>>24)%900000)
		b = append(b, `"}`...)
	}
	return append(b, '}')
}

// appendBatch appends events first to first+n-1 as a batch body: a JSON
// object {"events":[…]}, or NDJSON, one event per line.
func (g *generator) appendBatch(b []byte, first, n int, ndjson bool) []byte {
	if !ndjson {
		b = append(b, `{"events":[`...)
	}
	for i := first; i < first+n; i++ {
		if i > first && !ndjson {
			b = append(b, ',')
		}
		b = g.appendEvent(b, i)
		if ndjson {
			b = append(b, '\n')
		}
	}
	if !ndjson {
		b = append(b, "]}"...)
	}
	return b
}

// mix is SplitMix64's finaliser: a cheap hash that spreads consecutive
// inputs over all 64 bits.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// appendPadded appends n in decimal with at least width digits.
func appendPadded(b []byte, n uint64, width int) []byte {
	var d [20]byte
	s := strconv.AppendUint(d[:0], n, 10)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendAmount appends cents as a decimal amount, such as 1234.56.
func appendAmount(b []byte, cents uint64) []byte {
	b = strconv.AppendUint(b, cents/100, 10)
	b = append(b, '.')
	return appendPadded(b, cents%100, 2)
}

func appendAccount(b []byte, cust int) []byte {
	b = append(b, "ACC"...)
	return appendPadded(b, uint64(cust)*104729%10000000000, 10)
}

// appendIBAN appends an IBAN-shaped account number; the check digits are
// not real.
func appendIBAN(b []byte, country string, n uint64) []byte {
	b = append(b, country...)
	b = appendPadded(b, n%97, 2)
	b = append(b, "3704"...)
	return appendPadded(b, mix(n)%1e14, 14)
}
