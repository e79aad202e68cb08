package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/twoman/ssks"
)

// The services' default databases and addresses differ, so that the two
// started with their defaults on one machine neither share a file nor
// fight for a port.
const (
	defaultKeysDB   = "veil-keys.db"
	defaultSSKSDB   = "veil-ssks.db"
	defaultKeysAddr = "127.0.0.1:8080"
	defaultSSKSAddr = "127.0.0.1:8081"
)

// applyServiceDefaults fills --db and --addr, when neither the command
// line nor the environment gave them, with the defaults of the service
// being started.
func (s *serveSettings) applyServiceDefaults() {
	db, addr := defaultKeysDB, defaultKeysAddr
	if s.ssks {
		db, addr = defaultSSKSDB, defaultSSKSAddr
	}
	for i := range s.flags {
		f := &s.flags[i]
		switch {
		case f.name == "db" && *f.val == "":
			*f.val = db
		case f.name == "addr" && *f.val == "":
			*f.val = addr
		}
	}
}

// openKeyStore opens the key service's store: an existing one unless
// create.
func openKeyStore(ctx context.Context, dsn string, create bool) (server.Store, error) {
	open := server.OpenExistingStore
	if create {
		open = server.OpenStore
	}
	st, err := open(ctx, dsn)
	return st, storeError(err)
}

// openSSKSStore opens the SSKS's store: an existing one unless create.
func openSSKSStore(ctx context.Context, dsn string, create bool) (ssks.Store, error) {
	open := ssks.OpenExistingStore
	if create {
		open = ssks.OpenStore
	}
	st, err := open(ctx, dsn)
	return st, storeError(err)
}

// storeError says what to do about a database that is not set up.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, server.ErrNoDatabase):
		return fmt.Errorf("opening the store: %w (check --db; on the first start, give --create to set up a new database)", err)
	}
	return fmt.Errorf("opening the store: %w", err)
}
