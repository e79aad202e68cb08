package ssks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/veilchat/veil/internal/httpjson"
	redaction "github.com/veilchat/veil/internal/redact" // redact is the package's function for error texts
	"github.com/veilchat/veil/twoman"
)

// Code is a one-time code in transit to its user. It redacts itself under
// fmt and slog, refuses encoding/json, and Reveal returns the digits for
// the message body. The digits sit two pointers away, so that fmt,
// printing a struct that holds a Code in an unexported field (where it
// cannot call Format), shows an address under every verb.
type Code struct{ digits redaction.Value[string] }

// NewCode returns a Code holding digits. The SSKS makes codes itself; this
// is for tests of a Sender.
func NewCode(digits string) Code { return Code{redaction.Hold(&digits)} }

// Reveal returns the digits ("" for the zero value). Put them only in the
// message to the user.
func (c Code) Reveal() string {
	if c.digits.IsZero() {
		return ""
	}
	return *c.digits.Get()
}

const codeName = redaction.Name("ssks.Code")

// String returns a redacted placeholder.
func (c Code) String() string { return codeName.String() }

// GoString returns a redacted placeholder.
func (c Code) GoString() string { return codeName.GoString() }

// Format prints a redacted placeholder under every verb.
func (c Code) Format(f fmt.State, verb rune) { codeName.Format(f, verb) }

// LogValue implements slog.LogValuer with a redacted placeholder.
func (c Code) LogValue() slog.Value { return codeName.LogValue() }

// MarshalJSON refuses: a code reaches a message only through Reveal.
func (c Code) MarshalJSON() ([]byte, error) { return codeName.MarshalJSON() }

// Challenge is what a Sender delivers: a code for a user through a factor.
type Challenge struct {
	UserID  string
	Factor  twoman.Factor
	Code    Code
	Issued  time.Time
	Expires time.Time
}

// Sender delivers one-time codes. Implementations must be safe for
// concurrent use and must not log the code.
type Sender interface {
	Send(ctx context.Context, c Challenge) error
}

// DefaultEmailTemplate is the message SMTPSender sends when its Template is
// nil. It receives a TemplateData.
const DefaultEmailTemplate = `Your {{.AppName}} verification code is {{.Code}}

It expires in {{.Minutes}} minutes. If you did not ask to recover your
account on a new device, ignore this message and do not share the code.
`

// TemplateData is what an SMTPSender template is executed with.
type TemplateData struct {
	AppName string
	Code    string
	Minutes int
	UserID  string
}

// SMTPSender sends codes by email through an SMTP server, with STARTTLS
// required (unless InsecurePlaintext) and optional authentication.
type SMTPSender struct {
	// Addr is the server's host:port (submission port 587 typically).
	Addr string
	// From is the envelope and header sender address.
	From string
	// AppName fills the template's {{.AppName}} and the subject.
	AppName string
	// Username and Password, if set, authenticate with AUTH PLAIN (only
	// over TLS).
	Username string
	Password Secret
	// TLSConfig for STARTTLS; nil verifies the server's certificate for the
	// host of Addr with the system roots.
	TLSConfig *tls.Config
	// Template is the text/template of the body; nil means
	// DefaultEmailTemplate.
	Template *template.Template
	// Timeout bounds the whole exchange. Zero means 30 s.
	Timeout time.Duration
	// InsecurePlaintext sends without TLS when the server offers no
	// STARTTLS. Only for a relay on the same machine.
	InsecurePlaintext bool
}

var defaultTemplate = template.Must(template.New("email").Parse(DefaultEmailTemplate))

// Check reports a configuration Send would refuse: a From that is not one
// mail address, a From or AppName with a control character (a CR or LF
// in a header value would let it inject headers, a Bcc: to an attacker for
// one), or a Template that fails on sample data (with its error, which
// Send does not show: it may quote the code). NewHandler calls it, so a
// bad configuration fails at start-up.
func (s *SMTPSender) Check() error {
	if s.Addr == "" {
		return errors.New("twoman: SMTPSender.Addr is empty")
	}
	if _, err := s.fromAddress(); err != nil {
		return err
	}
	if err := headerSafe("SMTPSender.AppName", s.AppName); err != nil {
		return err
	}
	sample := TemplateData{AppName: s.AppName, Code: "00000000", Minutes: 10, UserID: "alice"}
	if err := s.template().Execute(io.Discard, sample); err != nil {
		return fmt.Errorf("twoman: SMTPSender.Template fails on sample data: %w", err)
	}
	return nil
}

// template returns Template, or the default one.
func (s *SMTPSender) template() *template.Template {
	if s.Template == nil {
		return defaultTemplate
	}
	return s.Template
}

// fromAddress parses From, which may carry a display name
// ("Acme <no-reply@acme.example>").
func (s *SMTPSender) fromAddress() (*mail.Address, error) {
	if err := headerSafe("SMTPSender.From", s.From); err != nil {
		return nil, err
	}
	a, err := mail.ParseAddress(s.From)
	if err != nil {
		return nil, fmt.Errorf("twoman: SMTPSender.From is not a mail address: %w", err)
	}
	if err := headerSafe("SMTPSender.From", a.Name); err != nil {
		// An encoded word can decode to a line break.
		return nil, err
	}
	return a, nil
}

// headerSafe refuses a value with a control character: written into a
// header, a CR or LF ends it and starts another.
func headerSafe(field, v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("twoman: %s contains a line break or another control character; it would inject mail headers", field)
	}
	return nil
}

// Send implements Sender: it composes the message and delivers it.
func (s *SMTPSender) Send(ctx context.Context, c Challenge) error {
	m, err := s.compose(c, time.Now(), rand.Reader)
	if err != nil {
		return err
	}
	defer clear(m.data)
	return s.deliver(ctx, m)
}

// outgoing is a composed mail: envelope addresses and the message, whose
// body holds the code (the caller clears data after delivery).
type outgoing struct {
	from, to string
	data     []byte
}

// compose builds the message of a challenge, dated now, with a Message-ID
// drawn from rnd. It refuses a header value with a control character
// rather than send a header-injected mail.
func (s *SMTPSender) compose(c Challenge, now time.Time, rnd io.Reader) (outgoing, error) {
	if c.Factor.Type != twoman.Email {
		return outgoing{}, fmt.Errorf("twoman: SMTPSender cannot send to a %s factor", c.Factor.Type)
	}
	to, err := c.Factor.Normalize()
	if err != nil {
		return outgoing{}, err
	}
	if err := headerSafe("the recipient address", to.Value); err != nil {
		return outgoing{}, err
	}
	from, err := s.fromAddress()
	if err != nil {
		return outgoing{}, err
	}
	app := s.AppName
	if app == "" {
		app = "Veil"
	}
	if err := headerSafe("SMTPSender.AppName", app); err != nil {
		return outgoing{}, err
	}
	var body bytes.Buffer
	defer clear(body.Bytes())
	if err := s.template().Execute(&body, TemplateData{AppName: app, Code: c.Code.Reveal(), Minutes: int(c.Expires.Sub(c.Issued).Round(time.Minute).Minutes()), UserID: c.UserID}); err != nil {
		// Not wrapped: text/template quotes the value it failed on, which
		// may be the code or a part of it. Check shows the error on
		// sample data.
		return outgoing{}, errors.New("twoman: the email template failed on this challenge (SMTPSender.Check shows its error on sample data)")
	}
	var mid [12]byte
	if _, err := io.ReadFull(rnd, mid[:]); err != nil {
		return outgoing{}, fmt.Errorf("twoman: Message-ID: %w", err)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		from.String(), to.Value, mime.QEncoding.Encode("utf-8", app+" verification code"), now.UTC().Format(time.RFC1123Z), hex.EncodeToString(mid[:]), domain)
	msg.Write(bytes.ReplaceAll(bytes.ReplaceAll(body.Bytes(), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")))
	return outgoing{from: from.Address, to: to.Value, data: msg.Bytes()}, nil
}

// deliver sends a composed mail through the SMTP server at Addr, with
// STARTTLS unless InsecurePlaintext and the server offers none.
func (s *SMTPSender) deliver(ctx context.Context, m outgoing) error {
	return s.exchange(ctx, func(cl *smtp.Client) error {
		if err := cl.Mail(m.from); err != nil {
			return smtpError("MAIL", err)
		}
		if err := cl.Rcpt(m.to); err != nil {
			return smtpError("RCPT", err)
		}
		w, err := cl.Data()
		if err != nil {
			return smtpError("DATA", err)
		}
		if _, err := w.Write(m.data); err != nil {
			return smtpError("DATA", err)
		}
		if err := w.Close(); err != nil {
			return smtpError("DATA", err)
		}
		return nil
	})
}

// Probe connects to the SMTP server as Send would — the greeting,
// STARTTLS with the server's certificate verified (TLSConfig, else the
// system roots), and AUTH when Username is set — and quits without
// sending anything. `veil serve --ssks` calls it at start-up, so that a
// server without STARTTLS, a certificate the SSKS does not trust or wrong
// credentials stop the service before a user waits for a code that never
// comes. Its errors quote no reply text (see Send).
func (s *SMTPSender) Probe(ctx context.Context) error {
	return s.exchange(ctx, func(*smtp.Client) error { return nil })
}

// exchange runs fn on a connection to the SMTP server at Addr after the
// greeting, STARTTLS (unless InsecurePlaintext and the server offers
// none) and AUTH, then quits.
func (s *SMTPSender) exchange(ctx context.Context, fn func(*smtp.Client) error) error {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("twoman: SMTPSender.Addr: %w", err)
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return smtpError("dial", err)
	}
	// The context bounds the dial; the deadline bounds the exchange, and
	// a cancellation closes the connection.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return smtpError("dial", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return smtpError("greeting", err)
	}
	// After a failure, Close drops the connection; its error adds nothing.
	defer cl.Close()
	if err := cl.Hello("localhost"); err != nil {
		return smtpError("HELO", err)
	}
	tlsOn := false
	if ok, _ := cl.Extension("STARTTLS"); ok {
		cfg := s.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := cl.StartTLS(cfg); err != nil {
			return smtpError("STARTTLS", err)
		}
		tlsOn = true
	} else if !s.InsecurePlaintext {
		return errors.New("twoman: smtp server offers no STARTTLS; refusing to send a code in clear text")
	}
	if s.Username != "" {
		if !tlsOn {
			return errors.New("twoman: refusing SMTP authentication without TLS")
		}
		if err := cl.Auth(smtp.PlainAuth("", s.Username, string(s.Password.Reveal()), host)); err != nil {
			return smtpError("AUTH", err)
		}
	}
	if err := fn(cl); err != nil {
		return err
	}
	if err := cl.Quit(); err != nil {
		return smtpError("QUIT", err)
	}
	return nil
}

// smtpError reports a failed SMTP step. A server's reply text often quotes
// the recipient's address (a factor value), so only its status code is
// kept.
func smtpError(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Errorf("twoman: smtp %s: the server answered %d", step, te.Code)
	}
	return fmt.Errorf("twoman: smtp %s: %w", step, err)
}

// WebhookSender POSTs each challenge as JSON to an HTTP endpoint (an SMS
// gateway adapter, the app's notification service), signed so the receiver
// can check it came from the SSKS: header X-Veil-Timestamp is the Unix time
// of sending in decimal seconds, and X-Veil-Signature the lower-case hex
// HMAC-SHA256, under Secret, of the timestamp, a '.', and the body's bytes
// as sent ([WebhookSignature]). The body is
//
//	{"user_id": "…", "factor": {"type": "email"|"sms", "value": "…"},
//	 "code": "12345678", "expires_at": "2026-01-02T15:04:05Z"}
//
// A receiver recomputes the signature over the raw body, compares it with
// hmac.Equal, and refuses a timestamp more than a few minutes off its
// clock (a replay). URL must be https, or http to this machine (a
// loopback address or localhost). It may carry the gateway's credentials
// in its path, query or user information: errors quote only its scheme and
// host, so they never reach a log.
type WebhookSender struct {
	URL    string
	Secret Secret
	// Client sends the request; nil means a client with a 15 s timeout.
	// Whatever its CheckRedirect, a redirect is not followed (see Send).
	Client *http.Client
}

type webhookBody struct {
	UserID    string        `json:"user_id"`
	Factor    twoman.Factor `json:"factor"`
	Code      string        `json:"code"`
	ExpiresAt time.Time     `json:"expires_at"`
}

// Send implements Sender. A non-2xx answer is an error, a redirect
// included: followed, a 307 or 308 would post the code to a host the
// configuration does not name, over plain http as readily as not, past
// what Check refuses.
func (s *WebhookSender) Send(ctx context.Context, c Challenge) error {
	if err := s.Check(); err != nil {
		return err
	}
	body, err := json.Marshal(webhookBody{UserID: c.UserID, Factor: c.Factor, Code: c.Code.Reveal(), ExpiresAt: c.Expires.UTC()})
	if err != nil {
		return err
	}
	defer clear(body)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("twoman: webhook: %w", httpjson.RedactURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Veil-Timestamp", ts)
	req.Header.Set("X-Veil-Signature", WebhookSignature(s.Secret.Reveal(), ts, body))
	cl := http.Client{Timeout: 15 * time.Second}
	if s.Client != nil {
		cl = *s.Client
	}
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.Do(req)
	if err != nil {
		// The URL's path, query or user information may hold the
		// gateway's credentials, and *url.Error quotes the whole URL.
		return fmt.Errorf("twoman: webhook: %w", httpjson.RedactURLError(err))
	}
	defer resp.Body.Close()
	// Draining lets the connection be reused; a failure here changes
	// nothing about the delivery, which the status decides.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("twoman: webhook %s answered %d", httpjson.StripURL(req.URL), resp.StatusCode)
	}
	return nil
}

// Check reports a configuration Send would refuse: a Secret under 32
// bytes, or a URL that is not absolute https (or http to this machine). NewHandler calls it,
// so a bad configuration fails at start-up. Its errors quote at most the
// URL's scheme and host.
func (s *WebhookSender) Check() error {
	if s.Secret.Len() < 32 {
		return errors.New("twoman: WebhookSender.Secret must be at least 32 bytes")
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("twoman: WebhookSender.URL: %w", httpjson.RedactURLError(err))
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("twoman: WebhookSender.URL %q is not an absolute http or https URL", httpjson.StripURL(u))
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return fmt.Errorf("twoman: WebhookSender.URL %q is plain http to another machine: codes would cross the network in clear text; use https (http is for a gateway on this machine only)", httpjson.StripURL(u))
	}
	return nil
}

// loopback reports whether host names this machine: "localhost" or a
// loopback IP address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// FactorRouter is a Sender that sends each code through the Sender of its
// factor's type: email codes through Email (an SMTPSender), SMS codes
// through SMS (a WebhookSender to an SMS gateway). A factor type without a
// Sender fails to send. `veil serve --ssks` uses one when both SMTP and a
// webhook are configured.
type FactorRouter struct {
	Email Sender
	SMS   Sender
}

// Send implements Sender.
func (r FactorRouter) Send(ctx context.Context, c Challenge) error {
	var s Sender
	switch c.Factor.Type {
	case twoman.Email:
		s = r.Email
	case twoman.SMS:
		s = r.SMS
	}
	if s == nil {
		return fmt.Errorf("twoman: no sender is configured for %s factors", c.Factor.Type)
	}
	return s.Send(ctx, c)
}

// Check checks the Senders that have a Check method, and that there is at
// least one.
func (r FactorRouter) Check() error {
	if r.Email == nil && r.SMS == nil {
		return errors.New("twoman: FactorRouter has no Sender")
	}
	for _, s := range []Sender{r.Email, r.SMS} {
		if c, ok := s.(interface{ Check() error }); ok {
			if err := c.Check(); err != nil {
				return err
			}
		}
	}
	return nil
}

// WebhookSignature computes the X-Veil-Signature of a webhook body. A
// receiver recomputes it and compares with hmac.Equal, and refuses stale
// timestamps.
func WebhookSignature(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// InsecureLogSender "sends" codes by writing them to a logger. It exists for
// local development only: anyone who reads the logs can recover any
// identity. It is never a default.
type InsecureLogSender struct {
	Logger *slog.Logger
}

// Send implements Sender by logging the code at warning level.
func (s InsecureLogSender) Send(_ context.Context, c Challenge) error {
	if s.Logger == nil {
		return errors.New("twoman: InsecureLogSender needs a Logger")
	}
	s.Logger.Warn("INSECURE development sender: one-time code", "user", c.UserID, "factor", string(c.Factor.Type), "code", c.Code.Reveal())
	return nil
}
