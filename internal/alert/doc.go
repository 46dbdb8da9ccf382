// Package alert tells a person that an unattended run failed, or that a
// condition began or ended (Status: restore watch's recovery point that is
// too old, and the notice when it is not any more): by email
// (SMTP, STARTTLS when the server offers it, PLAIN auth with a password read
// from a file) and/or by an HTTP webhook (a JSON POST whose "text" field
// suits Slack/Mattermost-style incoming hooks). Every configured channel is
// tried; Send returns the joined errors of those that failed, so a broken
// mail relay does not hide the webhook and vice versa. The password is read
// from a file at send time and never logged.
//
// Programs add the flags with Flags and build Options with FromContext:
// alert-smtp-addr, alert-smtp-from, alert-smtp-to, alert-smtp-user,
// alert-smtp-password-file, alert-webhook-url (TOML keys of the same names).
package alert
