// Package postcheck checks that a standby answers again after a restore and
// restart (stage 11): every configured health URL returns 2xx, Elasticsearch
// is at least yellow, MySQL answers a query. Services come back at their own
// pace after a restart, so each check is retried until it passes or the
// overall timeout ends; all checks run in parallel and each reports its own
// result, so an alert can say exactly what is down.
package postcheck
