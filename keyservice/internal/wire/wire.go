package wire

// PublishCardRequest is the body of PUT /v1/users/{user}/cards.
type PublishCardRequest struct {
	Card []byte `json:"card"`
}

// CardsResponse is a user's card history.
type CardsResponse struct {
	Cards [][]byte `json:"cards"`
}

// LookupRequest is the body of a card lookup.
type LookupRequest struct {
	UserIDs []string `json:"user_ids"`
}

// LookupResponse is the latest card of each user found.
type LookupResponse struct {
	Cards map[string][]byte `json:"cards"`
}

// Grant is one grant record on the wire.
type Grant struct {
	Grantee string `json:"grantee"`
	Epoch   uint32 `json:"epoch"`
	Grant   []byte `json:"grant"`
}

// CreateSessionRequest is the body of POST /v1/sessions: the session's
// genesis record and its epoch-0 grants.
type CreateSessionRequest struct {
	Genesis []byte  `json:"genesis"`
	Grants  []Grant `json:"grants"`
}

// CreateSessionResponse is the answer to a session creation: the session
// ID the genesis defines.
type CreateSessionResponse struct {
	ID string `json:"id"`
}

// LookupSessionResponse is the session of a channel.
type LookupSessionResponse struct {
	ID string `json:"id"`
}

// AppendRequest is the body of POST /v1/sessions/{id}/log: the next record
// of the membership log and the grants it needs.
type AppendRequest struct {
	Record []byte  `json:"record"`
	Grants []Grant `json:"grants"`
}

// LogResponse is one page of a membership log: consecutive records from
// the ?from= sequence number on.
type LogResponse struct {
	Records [][]byte `json:"records"`
	// Next, when set, is the sequence number of the next page's first
	// record: pass it as ?from=.
	Next *uint32 `json:"next,omitempty"`
}

// Head is the last record of a membership log: its sequence number and
// its 32-byte hash.
type Head struct {
	Seq  uint32 `json:"seq"`
	Hash []byte `json:"hash"`
}

// GrantsResponse is one page of the caller's grants.
type GrantsResponse struct {
	Grants []Grant `json:"grants"`
	// Next, when set, is the cursor of the next page: pass it as
	// ?after_epoch=.
	Next *uint32 `json:"next,omitempty"`
}

// ErrorBody is every error answer of the key service.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is an error's stable code and message, with what some codes
// add: the existing session of the channel (session_exists) and the
// log's head (conflict on an append).
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	SessionID string `json:"session_id,omitempty"`
	Head      *Head  `json:"head,omitempty"`
}
