package streamadapter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
)

// Channel is an encrypted Stream channel as the adapter's user sees it:
// its messages are sealed on the way out and opened on the way in, and its
// members are those of both the Stream channel and the Veil session. Make
// one with Client.CreateChannel or Client.Channel. It is safe for
// concurrent use.
type Channel struct {
	c   *Client
	sc  *stream.Channel
	cid string
	sid session.ID
}

// CID returns the channel's CID ("type:id").
func (ch *Channel) CID() string { return ch.cid }

// SessionID returns the ID of the channel's verified session.
func (ch *Channel) SessionID() session.ID { return ch.sid }

// Client returns the adapter the channel was opened with.
func (ch *Channel) Client() *Client { return ch.c }

// Stream returns the stream-chat-go channel, its data as read when the
// channel was opened (Query does not update it, so that concurrent calls
// share nothing). Messages sent through it directly are not encrypted.
func (ch *Channel) Stream() *stream.Channel { return ch.sc }

// createWait bounds how long CreateChannel waits for a concurrent creator
// to write the session_id.
const createWait = 5 * time.Second

// CreateChannel creates an encrypted channel of type chanType and ID chanID
// with the adapter's user and members: the Stream channel with its members,
// then the Veil session (the user as its admin), then the session's ID in
// the channel's session_id with the encrypted marker. If the channel is
// already encrypted, or another member creates it at the same time, it
// opens the channel's session instead (as Client.Channel does), so that
// concurrent creators converge; if the other creator's session_id does not
// appear within a few seconds it returns ErrCreateConflict. A session
// another user created is adopted only if its members are among the
// user and members: one with others in it (a user who made the channel
// first, with itself in it) returns ErrChannelExists.
//
// An existing plaintext channel becomes encrypted from then on; its earlier
// messages read as StatusPlaintext. The members must be Stream users
// (UpsertUser) who have signed up with Veil (New publishes a user's card).
func (c *Client) CreateChannel(ctx context.Context, chanType, chanID string, members []string) (*Channel, error) {
	if chanType == "" || chanID == "" {
		return nil, errors.New("streamadapter: CreateChannel needs a channel type and ID")
	}
	all := append([]string{c.user}, members...)
	slices.Sort(all)
	all = slices.Compact(all)
	resp, err := c.sc.CreateChannel(ctx, chanType, chanID, c.user, &stream.ChannelRequest{Members: all})
	if err != nil {
		return nil, fmt.Errorf("streamadapter: creating the Stream channel: %w", err)
	}
	sch := resp.Channel
	cid := chanType + ":" + chanID
	if _, err := channelSession(sch); err == nil {
		ch, err := c.open(ctx, sch, cid, sch)
		if err != nil {
			return nil, err
		}
		return c.adopt(ctx, ch, all)
	}
	others := slices.DeleteFunc(slices.Clone(all), func(u string) bool { return u == c.user })
	s, err := c.veil.CreateSession(ctx, cid, others)
	var exists *session.SessionExistsError
	switch {
	case errors.As(err, &exists):
		ch, err := c.awaitSession(ctx, sch, cid)
		if err != nil {
			return nil, err
		}
		return c.adopt(ctx, ch, all)
	case errors.Is(err, session.ErrUnknownUser):
		return nil, fmt.Errorf("streamadapter: creating the session of %s: every member must have signed up with Veil first (streamadapter.New or e2ee.New publishes a user's card); the Stream channel exists without encryption: call CreateChannel again once they have: %w", cid, err)
	case err != nil:
		return nil, fmt.Errorf("streamadapter: creating the session of %s: %w", cid, err)
	}
	if _, err := sch.PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{
		FieldSessionID: s.ID().String(), FieldEncrypted: true}}); err != nil {
		return nil, fmt.Errorf("streamadapter: writing session_id %s to %s (the session exists: retry CreateChannel to write it): %w", s.ID(), cid, err)
	}
	return &Channel{c: c, sc: sch, cid: cid, sid: s.ID()}, nil
}

// adopt returns ch, a channel CreateChannel found with a session, unless
// another user created the session with members beyond want (sorted).
func (c *Client) adopt(ctx context.Context, ch *Channel, want []string) (*Channel, error) {
	info, err := c.mgr().Info(ctx, ch.sid)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: reading the members of the session of %s: %w", ch.cid, err)
	}
	if info.Creator == c.user {
		return ch, nil
	}
	var extra []string
	for _, m := range info.Members {
		if _, ok := slices.BinarySearch(want, m.UserID); !ok {
			extra = append(extra, m.UserID)
		}
	}
	if len(extra) > 0 {
		return nil, fmt.Errorf("%w: the session of %s, created by %q, has %d members beyond those asked for, %q first",
			ErrChannelExists, ch.cid, info.Creator, len(extra), extra[0])
	}
	return ch, nil
}

// awaitSession waits for a concurrent creator's session_id, then opens it.
func (c *Client) awaitSession(ctx context.Context, sch *stream.Channel, cid string) (*Channel, error) {
	deadline := time.Now().Add(createWait)
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		if _, err := sch.Query(ctx, &stream.QueryRequest{Data: &stream.ChannelRequest{}}); err != nil {
			return nil, fmt.Errorf("streamadapter: reading %s: %w", cid, err)
		}
		if _, err := channelSession(sch); err == nil {
			return c.open(ctx, sch, cid, sch)
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("%w: %s", ErrCreateConflict, cid)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Channel opens the encrypted channel chanType:chanID: it reads the
// channel's session_id and verifies that the session belongs to the channel
// (its signed genesis names it and its creator is a member on Stream) and
// that it is the session this client verified for the channel before, if
// any. A channel without a session_id returns ErrNotEncrypted; one whose
// session does not verify, ErrSessionMismatch; one whose session the user
// is not (or no longer) a member of, ErrRemoved.
func (c *Client) Channel(ctx context.Context, chanType, chanID string) (*Channel, error) {
	if chanType == "" || chanID == "" {
		return nil, errors.New("streamadapter: Channel needs a channel type and ID")
	}
	sch := c.sc.Channel(chanType, chanID)
	if _, err := sch.Query(ctx, &stream.QueryRequest{Data: &stream.ChannelRequest{}}); err != nil {
		return nil, fmt.Errorf("streamadapter: reading channel %s:%s (it must exist on Stream: create it with CreateChannel): %w", chanType, chanID, err)
	}
	return c.open(ctx, sch, chanType+":"+chanID, sch)
}

// open verifies and binds the session the channel's data names (data is
// sch when sch was fetched; QueryChannels fetches the data apart).
func (c *Client) open(ctx context.Context, sch *stream.Channel, cid string, data *stream.Channel) (*Channel, error) {
	id, err := channelSession(data)
	if err != nil {
		return nil, err
	}
	if _, err := c.veil.OpenChannel(ctx, cid, id); err != nil {
		if errors.Is(err, e2ee.ErrSessionChanged) || errors.Is(err, session.ErrWrongChannel) || errors.Is(err, session.ErrInvalidLog) {
			return nil, fmt.Errorf("%w: %w", ErrSessionMismatch, err)
		}
		if errors.Is(err, session.ErrForbidden) || errors.Is(err, session.ErrNotMember) {
			return nil, fmt.Errorf("%w: %s: %w", ErrRemoved, cid, err)
		}
		return nil, fmt.Errorf("streamadapter: opening the session of %s: %w", cid, err)
	}
	return &Channel{c: c, sc: sch, cid: cid, sid: id}, nil
}

// verifiedSession returns the session of channel cid this client verified:
// the one its state binds the channel to, else the one the channel's
// session_id names, verified and bound as Client.Channel does.
func (c *Client) verifiedSession(ctx context.Context, cid string) (session.ID, error) {
	if id, ok := c.veil.ChannelSession(cid); ok {
		return id, nil
	}
	typ, id, err := splitCID(cid)
	if err != nil {
		return session.ID{}, err
	}
	ch, err := c.Channel(ctx, typ, id)
	if err != nil {
		return session.ID{}, err
	}
	return ch.sid, nil
}

// AddMembersOption is an option of Channel.AddMembers.
type AddMembersOption func(*addOptions)

type addOptions struct{ hideHistory bool }

// HideHistory makes the added members unable to read what was sent before
// they joined: the session moves to a new epoch (and Stream hides the
// earlier messages from them, with hide_history).
func HideHistory() AddMembersOption { return func(o *addOptions) { o.hideHistory = true } }

// AddMembers adds users to the channel on Stream, then to its session:
// with their history visible (the current epoch's key) unless HideHistory
// is given. If the second step fails, the users are members on Stream
// without any key (they read nothing): call AddMembers again.
func (ch *Channel) AddMembers(ctx context.Context, userIDs []string, opts ...AddMembersOption) error {
	if len(userIDs) == 0 {
		return errors.New("streamadapter: AddMembers needs at least one user ID")
	}
	var o addOptions
	for _, f := range opts {
		f(&o)
	}
	var sopts []stream.AddMembersOptions
	if o.hideHistory {
		sopts = append(sopts, stream.AddMembersWithHideHistory())
	}
	if _, err := ch.sc.AddMembers(ctx, userIDs, sopts...); err != nil {
		return fmt.Errorf("streamadapter: adding members to %s on Stream: %w", ch.cid, err)
	}
	if err := ch.c.veil.Manager().Extend(ctx, ch.sid, userIDs, o.hideHistory); err != nil {
		return fmt.Errorf("streamadapter: adding members to the session of %s (they are members on Stream, without keys; retry): %w", ch.cid, err)
	}
	return nil
}

// RemoveMembers removes users from the channel's session first — a new
// epoch whose key only the remaining members get, so that the removed
// users read nothing sent from then on, even with every key they held —
// then from the Stream channel. If the second step fails, the users are
// still listed on Stream but read nothing new: call RemoveMembers again.
// Members removed on Stream only, by another client, are rotated out by
// the next member who sends.
func (ch *Channel) RemoveMembers(ctx context.Context, userIDs []string) error {
	if len(userIDs) == 0 {
		return errors.New("streamadapter: RemoveMembers needs at least one user ID")
	}
	if err := ch.c.veil.Manager().Revoke(ctx, ch.sid, userIDs); err != nil {
		return fmt.Errorf("streamadapter: removing members from the session of %s (nothing was changed on Stream): %w", ch.cid, err)
	}
	if _, err := ch.sc.RemoveMembers(ctx, userIDs, nil); err != nil {
		return fmt.Errorf("streamadapter: removing members from %s on Stream (they no longer read new messages; retry to remove them on Stream): %w", ch.cid, err)
	}
	return nil
}
