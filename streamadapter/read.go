package streamadapter

import (
	"context"
	"errors"
	"fmt"

	stream "github.com/GetStream/stream-chat-go/v6"
)

// QueryResponse is Stream's answer to Channel.Query with the messages
// opened.
type QueryResponse struct {
	// QueryResponse is Stream's answer; its messages are the envelopes.
	*stream.QueryResponse
	// Messages and PinnedMessages are the channel's messages, opened.
	Messages       []*Message
	PinnedMessages []*Message
}

// Query queries the channel as stream.Channel.Query does (q nil means
// its state with the newest messages) and opens its messages: each comes
// with a Status, and one that does not open never fails the page.
func (ch *Channel) Query(ctx context.Context, q *stream.QueryRequest) (*QueryResponse, error) {
	if q == nil {
		q = &stream.QueryRequest{State: true}
	}
	if q.Data == nil {
		q.Data = &stream.ChannelRequest{}
	}
	// stream-chat-go's Query rewrites the handle it is called on: query a
	// handle of this call's own, so that concurrent calls share nothing.
	typ, chanID, err := splitCID(ch.cid)
	if err != nil {
		return nil, err
	}
	sc := ch.c.sc.Channel(typ, chanID)
	resp, err := sc.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: querying %s: %w", ch.cid, err)
	}
	if id, err := channelSession(sc); err == nil && id != ch.sid {
		return nil, fmt.Errorf("%w: %s now names session %s, verified %s", ErrSessionMismatch, ch.cid, id, ch.sid)
	}
	all := append(append([]*stream.Message{}, resp.Messages...), resp.PinnedMessages...)
	opened := ch.c.openPage(ctx, ch.cid, &ch.sid, all)
	return &QueryResponse{QueryResponse: resp, Messages: opened[:len(resp.Messages)], PinnedMessages: opened[len(resp.Messages):]}, nil
}

// GetMessages returns the channel's messages with the given IDs, opened.
func (ch *Channel) GetMessages(ctx context.Context, messageIDs []string) ([]*Message, error) {
	if len(messageIDs) == 0 {
		return nil, errors.New("streamadapter: GetMessages needs message IDs")
	}
	resp, err := ch.sc.GetMessages(ctx, messageIDs)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: getting messages of %s: %w", ch.cid, err)
	}
	return ch.c.openPage(ctx, ch.cid, &ch.sid, resp.Messages), nil
}

// GetReplies returns the replies of a thread, opened. options are
// stream.Channel.GetReplies's (limit, id_lt, ...). A message Stream lists
// that is not a reply to parentID fails as tampered.
func (ch *Channel) GetReplies(ctx context.Context, parentID string, options map[string][]string) ([]*Message, error) {
	resp, err := ch.sc.GetReplies(ctx, parentID, options)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: getting the replies to %s: %w", parentID, err)
	}
	out := ch.c.openPage(ctx, ch.cid, &ch.sid, resp.Messages)
	for _, m := range out {
		if m.ParentID != parentID && m.Status != StatusDeleted {
			*m = Message{Message: m.Message, Status: StatusFailed,
				Err: fmt.Errorf("%w: a message of thread %q among the replies to %q", ErrTampered, m.ParentID, parentID)}
		}
	}
	return out, nil
}

// GetMessage returns one message by ID, opened. Without a channel to check
// it against, the message is bound to the channel Stream says it is in:
// it opens only if its session is the one this client verified for that
// channel (verifying the channel's session_id first, as Client.Channel
// does, if it has none).
func (c *Client) GetMessage(ctx context.Context, msgID string) (*Message, error) {
	resp, err := c.sc.GetMessage(ctx, msgID)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: getting message %s: %w", msgID, err)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("streamadapter: Stream answered no message for %s", msgID)
	}
	if resp.Message.ID != msgID {
		return nil, fmt.Errorf("streamadapter: Stream answered message %s for %s", resp.Message.ID, msgID)
	}
	return c.openPage(ctx, "", nil, []*stream.Message{resp.Message})[0], nil
}

// ChannelState is one channel of Client.QueryChannels.
type ChannelState struct {
	// Stream is the channel as Stream returned it.
	Stream *stream.Channel
	// Channel is the encrypted channel, or nil when it is not encrypted
	// or its session does not verify (Err says why: ErrNotEncrypted,
	// ErrSessionMismatch, ...).
	Channel *Channel
	Err     error
	// Messages are the messages Stream returned with the channel, opened.
	Messages []*Message
}

// QueryChannels queries channels as stream.Client.QueryChannels does,
// among those the adapter's user is a member of, and opens each one's
// session and messages. A channel that is not encrypted comes back with
// ErrNotEncrypted and its messages as StatusPlaintext.
func (c *Client) QueryChannels(ctx context.Context, q *stream.QueryOption, sort ...*stream.SortOption) ([]*ChannelState, error) {
	var qq stream.QueryOption
	if q != nil {
		qq = *q
	}
	mine := map[string]any{"members": map[string]any{"$in": []string{c.user}}}
	if len(qq.Filter) == 0 {
		qq.Filter = mine
	} else {
		qq.Filter = map[string]any{"$and": []any{qq.Filter, mine}}
	}
	resp, err := c.sc.QueryChannels(ctx, &qq, sort...)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: querying channels: %w", err)
	}
	out := make([]*ChannelState, len(resp.Channels))
	for i, sch := range resp.Channels {
		st := &ChannelState{Stream: sch}
		out[i] = st
		cid := sch.CID
		if cid == "" {
			cid = sch.Type + ":" + sch.ID
		}
		ch, err := c.open(ctx, c.sc.Channel(sch.Type, sch.ID), cid, sch)
		if err != nil {
			st.Err = err
			st.Messages = c.openPage(ctx, cid, nil, sch.Messages)
			continue
		}
		st.Channel = ch
		st.Messages = c.openPage(ctx, cid, &ch.sid, sch.Messages)
	}
	return out, nil
}
