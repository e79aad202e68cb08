package ssks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/veilchat/veil/twoman"
)

// Dump returns every row of the SSKS's tables as JSON lines: what someone
// with a copy of the database holds, for the tests that check what is (not)
// stored.
func (s *sqlStore) Dump(ctx context.Context) ([]byte, error) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	for _, table := range []string{"ssks_identities", "ssks_challenges", "ssks_passwords"} {
		rows, err := s.db.QueryContext(ctx, "SELECT * FROM "+table)
		if err != nil {
			return nil, err
		}
		cols, err := rows.Columns()
		if err != nil {
			rows.Close()
			return nil, err
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, err
			}
			row := map[string]any{"table": table}
			for i, c := range cols {
				if b, ok := vals[i].([]byte); ok {
					row[c] = string(b)
				} else {
					row[c] = fmt.Sprint(vals[i])
				}
			}
			if err := enc.Encode(row); err != nil {
				rows.Close()
				return nil, err
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}

// matches reports whether p proves the factor of a record with this type
// and factor hash.
func (p Proof) matches(t twoman.FactorType, hash []byte) bool {
	return p.FactorType == t && hmac.Equal(p.FactorHash, hash)
}
