package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/veilchat/veil/twoman/ssks"
)

// ssksHandler builds the SSKS from the settings. The returned function
// closes its store.
func ssksHandler(ctx context.Context, dsn string, s *serveSettings) (http.Handler, func() error, error) {
	get, logger := s.get, s.logger
	var appKeys []ssks.Secret
	for _, k := range splitList(get("ssks-app-keys")) {
		appKeys = append(appKeys, ssks.NewSecret([]byte(k)))
	}
	if len(appKeys) == 0 {
		return nil, nil, errors.New("--ssks needs VEIL_SSKS_APP_KEYS (see --help)")
	}
	hashKey, err := hex.DecodeString(get("ssks-hash-key"))
	if err != nil || len(hashKey) != 32 {
		return nil, nil, errors.New("--ssks needs VEIL_SSKS_HASH_KEY: 64 hex digits (e.g. openssl rand -hex 32)")
	}
	digits, err := strconv.Atoi(get("code-digits"))
	if err != nil || digits < 8 || digits > 12 {
		return nil, nil, errors.New("--code-digits must be 8 to 12")
	}
	challenges, err := strconv.Atoi(get("max-challenges-per-hour"))
	if err != nil || challenges < 1 {
		return nil, nil, errors.New("--max-challenges-per-hour must be a positive number")
	}
	sender, err := codeSender(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	store, err := openSSKSStore(ctx, dsn, s.create)
	if err != nil {
		return nil, nil, err
	}
	key := ssks.NewSecret(hashKey)
	if err := ssks.CheckHashKey(ctx, store, key); err != nil {
		store.Close()
		return nil, nil, err
	}
	o := &s.ops
	srv, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: appKeys, HashKey: key, Sender: sender, Logger: logger,
		CodeDigits: digits, MaxChallengesPerHour: challenges,
		MaxBodyBytes: s.maxBody, RateLimit: rateLimit(s.rps), RateBurst: int(2 * s.rps),
		Metrics: o.registry, OmitMetricsRoute: o.metricsAddr != "", TrustedProxies: o.trusted,
		MaxInFlightPerClient: o.maxInFlight, MinBodyRate: o.minBodyRate, BodyRateGrace: o.bodyRateWindow, MaxBodyMemory: o.maxBodyMemory,
	})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	o.metrics = srv.MetricsHandler()
	return srv, store.Close, nil
}

// smtpProbeTimeout bounds the start-up check of the SMTP server.
const smtpProbeTimeout = 30 * time.Second

// codeSender builds the way codes leave from the settings: SMTP for email
// codes, the webhook for SMS codes — each for both when it is the only one
// — or the log with --insecure-log-codes. The SMTP server is probed
// (STARTTLS with a trusted certificate, the credentials) before the
// service starts.
func codeSender(ctx context.Context, s *serveSettings) (ssks.Sender, error) {
	get, logger := s.get, s.logger
	if s.insecureLog {
		if get("smtp-addr") != "" || get("webhook-url") != "" {
			return nil, errors.New("--insecure-log-codes replaces the real senders: drop --smtp-addr and --webhook-url, or it")
		}
		logger.Warn("INSECURE: one-time codes are written to this log; never use --insecure-log-codes in production")
		return ssks.InsecureLogSender{Logger: logger}, nil
	}
	var email, sms ssks.Sender
	if get("webhook-url") != "" {
		if len(get("webhook-secret")) < 32 {
			return nil, errors.New("--webhook-url needs --webhook-secret (VEIL_SSKS_WEBHOOK_SECRET) of 32 bytes or more")
		}
		w := &ssks.WebhookSender{URL: get("webhook-url"), Secret: ssks.NewSecret([]byte(get("webhook-secret")))}
		if err := w.Check(); err != nil {
			return nil, err
		}
		sms = w
	}
	if get("smtp-addr") != "" {
		if get("smtp-from") == "" {
			return nil, errors.New("--smtp-from is required with --smtp-addr")
		}
		m := &ssks.SMTPSender{Addr: get("smtp-addr"), From: get("smtp-from"), AppName: get("app-name"),
			Username: get("smtp-user"), Password: ssks.NewSecret([]byte(get("smtp-password")))}
		if f := get("smtp-ca-file"); f != "" {
			cfg, err := smtpTLS(f, m.Addr)
			if err != nil {
				return nil, err
			}
			m.TLSConfig = cfg
		}
		if err := m.Check(); err != nil {
			return nil, err
		}
		probe, cancel := context.WithTimeout(ctx, smtpProbeTimeout)
		err := m.Probe(probe)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("checking the SMTP server (STARTTLS with a trusted certificate is required; --smtp-ca-file names a CA to trust): %w", err)
		}
		email = m
	} else if get("smtp-ca-file") != "" {
		return nil, errors.New("--smtp-ca-file is for --smtp-addr")
	}
	switch {
	case email != nil && sms != nil:
		logger.Info("codes: email by SMTP, SMS by the webhook")
		return ssks.FactorRouter{Email: email, SMS: sms}, nil
	case email != nil:
		return email, nil
	case sms != nil:
		return sms, nil
	}
	return nil, errors.New("--ssks needs a way to send codes: --smtp-addr, --webhook-url (or --insecure-log-codes in development)")
}

// smtpTLS returns the STARTTLS configuration trusting the CA certificates
// of the PEM file, for the host of addr.
func smtpTLS(file, addr string) (*tls.Config, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--smtp-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--smtp-ca-file %s holds no PEM certificate", file)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--smtp-addr: %w", err)
	}
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}
