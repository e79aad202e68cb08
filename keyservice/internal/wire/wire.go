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

// CreateSessionRequest is the body of POST /v1/sessions.
type CreateSessionRequest struct {
	ID         string  `json:"id"`
	ChannelCID string  `json:"channel_cid"`
	Grants     []Grant `json:"grants"`
}

// CreateSessionResponse is the answer to a session creation.
type CreateSessionResponse struct {
	ID      string `json:"id"`
	Created bool   `json:"created"`
}

// LookupSessionResponse is the session of a channel.
type LookupSessionResponse struct {
	ID string `json:"id"`
}

// Member is one session member on the wire.
type Member struct {
	UserID string `json:"user_id"`
	Admin  bool   `json:"admin"`
	Since  uint32 `json:"since_epoch"`
}

// SessionResponse is a session's state and one page of its members.
type SessionResponse struct {
	ID         string   `json:"id"`
	ChannelCID string   `json:"channel_cid"`
	Epoch      uint32   `json:"epoch"`
	Members    []Member `json:"members"`
	// Next, when not empty, is the cursor of the next page of members:
	// pass it as ?after=.
	Next string `json:"next,omitempty"`
}

// GrantsResponse is one page of the caller's grants.
type GrantsResponse struct {
	Grants []Grant `json:"grants"`
	// Next, when set, is the cursor of the next page: pass it as
	// ?after_epoch=.
	Next *uint32 `json:"next,omitempty"`
}

// ExtendRequest is the body of an extend call.
type ExtendRequest struct {
	Epoch  uint32  `json:"epoch"`
	Grants []Grant `json:"grants"`
}

// RotateRequest is the body of a rotate call.
type RotateRequest struct {
	FromEpoch uint32   `json:"from_epoch"`
	Remove    []string `json:"remove"`
	Grants    []Grant  `json:"grants"`
}

// AdminRequest is the body of a set-admin call.
type AdminRequest struct {
	Admin bool `json:"admin"`
}
