package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

// Options say where alerts go. Empty SMTPAddr and WebhookURL: alerts are off.
type Options struct {
	SMTPAddr         string   // host:port of the mail relay
	SMTPFrom         string   // envelope and header sender
	SMTPTo           []string // recipients
	SMTPUser         string   // PLAIN auth user; empty: no auth
	SMTPPasswordFile string   // file holding the password (0600)
	WebhookURL       string   // receives a JSON POST
	Timeout          time.Duration
}

// Enabled reports whether any alert channel is configured.
func (o Options) Enabled() bool { return o.SMTPAddr != "" || o.WebhookURL != "" }

// Alert is one report: a failed run, or a condition that began or ended.
type Alert struct {
	Program  string    `json:"program"`
	Command  string    `json:"command"`
	Host     string    `json:"host"`
	Time     time.Time `json:"time"`
	Status   Status    `json:"status"`
	ExitCode int       `json:"exit_code"`
	Summary  string    `json:"summary"` // one line: what failed
	Detail   string    `json:"detail,omitempty"`
}

// Status says what an alert reports.
type Status string

const (
	// Failed (the zero value, sent as "failed"): a run failed; ExitCode says how.
	Failed Status = ""
	// Firing: a condition that needs a person began (e.g. the standby's
	// recovery point is older than allowed).
	Firing Status = "firing"
	// Resolved: a condition reported Firing before is over.
	Resolved Status = "resolved"
)

// MarshalText names the zero value.
func (s Status) MarshalText() ([]byte, error) {
	if s == Failed {
		return []byte("failed"), nil
	}
	return []byte(s), nil
}

// Subject is the mail subject and the webhook's text head.
func (a Alert) Subject() string {
	if a.Status != Failed {
		return fmt.Sprintf("[bcp] %s %s %s on %s", a.Program, a.Command, strings.ToUpper(string(a.Status)), a.Host)
	}
	return fmt.Sprintf("[bcp] %s %s FAILED on %s (exit %d)", a.Program, a.Command, a.Host, a.ExitCode)
}

// Failure is the alert for a run of program's command that failed with
// err (exit code code): the error's first line is the summary, the rest
// and detail the body.
func Failure(program, command string, code int, err error, detail string) Alert {
	host, _ := os.Hostname()
	summary, rest, _ := strings.Cut(err.Error(), "\n")
	if rest != "" && detail != "" {
		rest += "\n"
	}
	return Alert{Program: program, Command: command, Host: host, Time: time.Now(), ExitCode: code, Summary: summary, Detail: rest + detail}
}

// Text is the plain-text body.
func (a Alert) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s\n", a.Subject(), a.Summary)
	if a.Detail != "" {
		fmt.Fprintf(&b, "\n%s\n", a.Detail)
	}
	fmt.Fprintf(&b, "\ntime: %s\n", a.Time.UTC().Format(time.RFC3339))
	return b.String()
}

// Send delivers a through every configured channel.
func Send(ctx context.Context, o Options, a Alert) error {
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var errs []error
	if o.SMTPAddr != "" {
		if err := sendMail(ctx, o, a); err != nil {
			errs = append(errs, fmt.Errorf("alert email via %s: %w", o.SMTPAddr, err))
		}
	}
	if o.WebhookURL != "" {
		if err := sendWebhook(ctx, o, a); err != nil {
			errs = append(errs, fmt.Errorf("alert webhook: %w", err))
		}
	}
	return errors.Join(errs...)
}

func sendMail(ctx context.Context, o Options, a Alert) error {
	if o.SMTPFrom == "" || len(o.SMTPTo) == 0 {
		return fmt.Errorf("%w: alert-smtp-from and alert-smtp-to are required with alert-smtp-addr", cli.ErrUsage)
	}
	host, _, err := net.SplitHostPort(o.SMTPAddr)
	if err != nil {
		return fmt.Errorf("%w: alert-smtp-addr %q: want host:port", cli.ErrUsage, o.SMTPAddr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", o.SMTPAddr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return err
		}
	}
	if o.SMTPUser != "" {
		pw, err := os.ReadFile(o.SMTPPasswordFile)
		if err != nil {
			return fmt.Errorf("read SMTP password file: %w", err)
		}
		if err := c.Auth(smtp.PlainAuth("", o.SMTPUser, strings.TrimSpace(string(pw)), host)); err != nil {
			return err
		}
	}
	if err := c.Mail(o.SMTPFrom); err != nil {
		return err
	}
	for _, to := range o.SMTPTo {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("recipient %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
		o.SMTPFrom, strings.Join(o.SMTPTo, ", "), a.Subject(), a.Time.Format(time.RFC1123Z),
		strings.ReplaceAll(a.Text(), "\n", "\r\n"))
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func sendWebhook(ctx context.Context, o Options, a Alert) error {
	body, err := json.Marshal(struct {
		Alert
		Text string `json:"text"`
	}{a, a.Subject() + ": " + a.Summary})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", req.URL.Redacted(), resp.Status)
	}
	return nil
}

// Flags are the alert settings of a program.
func Flags(f cli.Flags) []ucli.Flag {
	return []ucli.Flag{
		f.String("alert-smtp-addr", "", "mail relay host:port for failure alerts"),
		f.String("alert-smtp-from", "", "sender address of alert mails"),
		f.Strings("alert-smtp-to", nil, "recipients of alert mails"),
		f.String("alert-smtp-user", "", "SMTP user (PLAIN auth); empty for none"),
		f.Path("alert-smtp-password-file", "", "file holding the SMTP password"),
		f.String("alert-webhook-url", "", "URL that receives a JSON POST on failure"),
	}
}

// FromContext reads the Flags settings.
func FromContext(c *ucli.Context) Options {
	return Options{
		SMTPAddr:         c.String("alert-smtp-addr"),
		SMTPFrom:         c.String("alert-smtp-from"),
		SMTPTo:           c.StringSlice("alert-smtp-to"),
		SMTPUser:         c.String("alert-smtp-user"),
		SMTPPasswordFile: c.Path("alert-smtp-password-file"),
		WebhookURL:       c.String("alert-webhook-url"),
	}
}
