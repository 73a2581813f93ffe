package notifytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald"
)

// SMTPServer is a running SMTP server on 127.0.0.1. It offers AUTH only
// over TLS (after STARTTLS, or from the start with ImplicitTLS) and
// refuses MAIL before a successful AUTH, as a real submission server
// does. It stops when the test ends.
type SMTPServer struct {
	// Addr is host:port, Host 127.0.0.1 and Port the port it listens on.
	Addr string
	Host string
	Port int
	// Username and Password are the only credentials AUTH accepts.
	Username string
	Password string
	// TLS is herald.SMTPStartTLS, or herald.SMTPTLS with ImplicitTLS.
	TLS string
	// Certificate is the server's self-signed certificate (for 127.0.0.1,
	// ::1 and localhost); clients must skip verification or trust it.
	Certificate *x509.Certificate

	srv      *smtp.Server
	listener *trackingListener
	log      *testLogger

	mu      sync.Mutex
	mails   []Mail
	rejects map[string]int
	changed chan struct{} // closed and replaced when a mail arrives
}

// Mail is one message the server accepted.
type Mail struct {
	// From and To are the envelope's MAIL FROM and RCPT TO addresses.
	From string
	To   []string
	// Header is the message's header; Subject its decoded Subject and
	// MessageID its Message-ID.
	Header    mail.Header
	Subject   string
	MessageID string
	// Text and HTML are the decoded text/plain and text/html bodies,
	// with CRLF line ends turned to LF and without the final line break
	// that ends a part on the wire (a sender adds one if there is none).
	Text string
	HTML string
	// Raw is the message as received, after DATA.
	Raw []byte
}

// Option configures an SMTPServer.
type Option func(*config)

type config struct {
	implicitTLS bool
}

// ImplicitTLS makes the server speak TLS from the first byte (port 465
// style, herald.SMTPTLS) instead of offering STARTTLS.
func ImplicitTLS() Option { return func(c *config) { c.implicitTLS = true } }

// NewSMTPServer starts a server; t's cleanup stops it and waits for its
// goroutines.
func NewSMTPServer(t testing.TB, opts ...Option) *SMTPServer {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	cert, leaf, err := selfSigned()
	if err != nil {
		t.Fatalf("notifytest: certificate: %v", err)
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("notifytest: listen: %v", err)
	}
	s := &SMTPServer{
		Addr:        ln.Addr().String(),
		Host:        "127.0.0.1",
		Port:        ln.Addr().(*net.TCPAddr).Port,
		Username:    "herald",
		Password:    "s3cret-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		TLS:         herald.SMTPStartTLS,
		Certificate: leaf,
		rejects:     make(map[string]int),
		changed:     make(chan struct{}),
		log:         &testLogger{t: t},
	}
	// The TLS listener goes over the tracking one, not under it: the
	// server must see a *tls.Conn to know the connection is encrypted.
	s.listener = &trackingListener{Listener: ln, conns: make(map[net.Conn]struct{})}
	var l net.Listener = s.listener
	if cfg.implicitTLS {
		l = tls.NewListener(l, tlsConfig)
		s.TLS = herald.SMTPTLS
	}

	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = tlsConfig
	srv.AllowInsecureAuth = false // AUTH only once the connection is encrypted
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	// Bounds how long a connection the server was closing as it
	// accepted it can linger.
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = s.log
	s.srv = srv

	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close closes only the listeners Serve has registered, which it
		// may not have done yet.
		_ = ln.Close()
		<-served
		s.listener.closeAll()
		s.listener.wg.Wait()
		s.log.stop()
	})
	return s
}

// Target returns an email target that sends through s (skipping
// certificate verification, since s's certificate is self-signed).
func (s *SMTPServer) Target(from string, to ...string) herald.Target {
	return herald.Target{
		Kind: herald.TargetEmail,
		SMTP: &herald.SMTPConfig{
			Host: s.Host, Port: s.Port, Username: s.Username, Password: s.Password,
			TLS: s.TLS, InsecureSkipVerify: true,
		},
		From: from,
		To:   to,
	}
}

// Reject makes the server answer RCPT TO addr with code (a 450 to ask for
// a later try, a 550 to refuse for good).
func (s *SMTPServer) Reject(addr string, code int) {
	s.mu.Lock()
	s.rejects[strings.ToLower(addr)] = code
	s.mu.Unlock()
}

// Messages returns the mails received so far, oldest first.
func (s *SMTPServer) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Wait waits up to 10 seconds for at least n mails and returns them all;
// it fails t if they do not come.
func (s *SMTPServer) Wait(t testing.TB, n int) []Mail {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		mails, changed := append([]Mail(nil), s.mails...), s.changed
		s.mu.Unlock()
		if len(mails) >= n {
			return mails
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("notifytest: %d mails received within 10s, want %d", len(mails), n)
		}
	}
}

func (s *SMTPServer) add(m Mail) {
	s.mu.Lock()
	s.mails = append(s.mails, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// session is one SMTP conversation.
type session struct {
	s      *SMTPServer
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != ss.s.Username || password != ss.s.Password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.s.mu.Lock()
	code := ss.s.rejects[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if code != 0 {
		ec := smtp.EnhancedCode{5, 1, 1}
		if code < 500 {
			ec = smtp.EnhancedCode{4, 2, 1}
		}
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: "mailbox " + to + " unavailable"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable message: " + err.Error()}
	}
	m.From, m.To = ss.from, append([]string(nil), ss.to...)
	ss.s.add(m)
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// parse reads a received message: its header, and its text and HTML
// bodies whether it is a single part or multipart/alternative.
func parse(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Mail{}, fmt.Errorf("subject: %w", err)
	}
	m := Mail{Header: msg.Header, Subject: subject, MessageID: msg.Header.Get("Message-Id"), Raw: raw}
	err = readPart(&m, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return m, err
}

// readPart puts the text of a part, or of the parts of a multipart, in m.
func readPart(m *Mail, contentType, encoding string, body io.Reader) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			// NextPart has already decoded quoted-printable.
			if err := readPart(m, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, &lineJoiner{r: body})
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s body: %w", mediaType, err)
	}
	text := strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	switch mediaType {
	case "text/plain":
		m.Text = text
	case "text/html":
		m.HTML = text
	}
	return nil
}

// lineJoiner drops the line breaks of a base64 body.
type lineJoiner struct{ r io.Reader }

func (j *lineJoiner) Read(p []byte) (int, error) {
	for {
		n, err := j.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// selfSigned makes a certificate for the loopback addresses.
func selfSigned() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "notifytest SMTP server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf, nil
}

// trackingListener remembers the connections it accepted, so that the
// cleanup can close every one (also one the server had not registered
// yet when it closed) and wait until they are closed.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	l.wg.Add(1)
	return tc, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.wg.Done()
	})
	return err
}

// testLogger sends the server's error log to the test's log while the
// test runs.
type testLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *testLogger) Printf(format string, v ...any) { l.write(fmt.Sprintf(format, v...)) }
func (l *testLogger) Println(v ...any)               { l.write(fmt.Sprintln(v...)) }

func (l *testLogger) write(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("notifytest smtp: %s", strings.TrimSpace(s))
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
