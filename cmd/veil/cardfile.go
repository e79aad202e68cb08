package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/atomicfile"
)

// A card file is public: comment lines, then the card in standard base64,
// as the key service's JSON carries cards. readCard also takes the card in
// hex or raw bytes, and an unencrypted identity export (its current card).
func cardFileText(c *identity.Card) []byte {
	return fmt.Appendf(nil, "# Veil card of user %q, generation %d, fingerprint %s.\n# Public: share it. 'veil verify' compares two cards; 'veil inspect' shows one.\n%s\n",
		c.UserID(), c.Generation(), c.Fingerprint(), base64.StdEncoding.EncodeToString(c.Marshal()))
}

// maxCardFile bounds what readCard reads: an export of many generations.
const maxCardFile = identity.MaxExportSize

// readCard reads the card of a card file, or the current card of an
// identity export. Its errors name the file, never its content.
func readCard(path string) (*identity.Card, error) {
	data, err := readFileBounded(path, maxCardFile)
	if err != nil {
		return nil, err
	}
	c, err := parseCardInput(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func parseCardInput(data []byte) (*identity.Card, error) {
	text := strings.TrimSpace(string(data))
	switch {
	case looksLikeExport(text):
		_, cards, err := exportCards(text)
		if err != nil {
			return nil, err
		}
		return cards[len(cards)-1], nil
	case strings.HasPrefix(text, armorHeader) || strings.HasPrefix(text, ageMagic):
		return nil, errors.New("an encrypted file, not a card: give the card file 'veil keygen' wrote next to the identity")
	}
	for _, b := range decodings(data) {
		if len(b) <= identity.MaxCardSize {
			if c, err := identity.ParseCard(b); err == nil {
				return c, nil
			}
		}
	}
	return nil, errors.New("not a valid card (base64, hex or binary) nor an identity export")
}

// writeNewFile writes data to path with mode perm. Without force it refuses
// a path that exists (and never follows a symbolic link there); with force
// it replaces the file atomically, through a temporary file in the same
// directory, so that the old file's mode never applies to the new content.
func writeNewFile(path string, data []byte, perm os.FileMode, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: choose another path, or --force to replace it", path)
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		return f.Close()
	}
	return atomicfile.Replace(path, data, perm)
}
