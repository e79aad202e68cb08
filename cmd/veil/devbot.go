package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/examples/bot/echobot"
	"github.com/veilchat/veil/keyservice/server"
)

// startBot runs the bot of examples/bot against the stack: its state in
// dir/bot, its key-service tokens signed with the stack's HS256 secret, and
// its webhook on a loopback port, set as the emulator's webhook_url. It
// returns the bot's user ID. The stack's shutdown stops its server, then
// waits for the answers it is writing.
func (st *devStack) startBot(ctx context.Context, dir string, sec *devSecrets, logger *slog.Logger) (string, error) {
	sc, err := stream.NewClient(sec.streamKey, sec.streamSecret)
	if err != nil {
		return "", err
	}
	sc.BaseURL = st.urls[2]
	jwtSecret := []byte(sec.jwtSecret)
	bot, err := echobot.New(ctx, echobot.Config{
		Stream:        sc,
		KeyServiceURL: st.urls[0],
		KeyServiceToken: func(context.Context) (string, error) {
			return server.UserToken(jwtSecret, "", echobot.DefaultUserID, 5*time.Minute)
		},
		StateDir: filepath.Join(dir, "bot"),
		Logger:   logger.With("service", "bot"),
	})
	if err != nil {
		return "", err
	}
	st.closers = append(st.closers, bot.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: bot.Handler(sec.streamSecret), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	st.servers = append(st.servers, srv)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			st.errc <- err
		}
	}()
	if err := bot.Register(ctx, "http://"+ln.Addr().String()+echobot.WebhookPath); err != nil {
		return "", err
	}
	return bot.UserID(), nil
}
