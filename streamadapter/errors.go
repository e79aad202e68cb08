package streamadapter

import (
	"errors"
	"fmt"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// Errors. Every failure the adapter reports matches one of them with
// [errors.Is]; most also wrap the error of the layer below (a
// [session] or [e2ee] sentinel, or stream-chat-go's error), which
// errors.Is and errors.As reach too.
var (
	// ErrNotEncrypted is returned when opening a channel that has no
	// session_id: it was not created encrypted (create it with
	// Client.CreateChannel), or Stream dropped its custom data.
	ErrNotEncrypted = errors.New("streamadapter: the channel has no session_id: it is not an encrypted channel")
	// ErrSessionMismatch is returned when a channel's session_id names a
	// session that does not belong to it (its signed genesis names another
	// channel), or another session than the one this client verified for
	// the channel before (e2ee.ErrSessionChanged): Stream, or whoever can
	// write the channel's custom data, pointing it at a session of its own.
	ErrSessionMismatch = errors.New("streamadapter: the channel's session_id does not name the channel's verified session")
	// ErrCreateConflict is returned by Client.CreateChannel when another
	// client created the channel's session at the same time and did not
	// write its session_id in time: open the channel a moment later.
	ErrCreateConflict = errors.New("streamadapter: another client is creating this channel's session")
	// ErrChannelExists is returned by Client.CreateChannel when the
	// channel already has a session, created by another user, with members
	// CreateChannel was not asked for (the error names the first): someone
	// made the channel first, with itself or others in it. Check its
	// members before opening it with Client.Channel, or choose another
	// channel ID.
	ErrChannelExists = errors.New("streamadapter: the channel already has a session with members CreateChannel was not asked for")
	// ErrTooLong is returned, before anything is sent, for a message whose
	// sealed form would not fit in Stream's message length; the error says
	// how long the message is and what fits.
	ErrTooLong = errors.New("streamadapter: message too long once sealed")
	// ErrIDMismatch is returned when Stream stored a sent message under
	// another ID than the one it was sealed for: it would never open.
	ErrIDMismatch = errors.New("streamadapter: Stream did not keep the message ID the message was sealed for")
	// ErrPlaintextAttachment is returned by SendMessage for a message that
	// carries Stream attachments of its own: they would reach Stream in
	// the clear. Upload files with Channel.UploadFile and pass them with
	// Attach.
	ErrPlaintextAttachment = errors.New("streamadapter: a message in an encrypted channel cannot carry plaintext attachments: upload them with Channel.UploadFile and Attach")
	// ErrNotSender is returned when editing a message the adapter's user
	// did not send.
	ErrNotSender = errors.New("streamadapter: only the sender of a message can edit it")
	// ErrAttachmentURL is returned by Client.OpenAttachment, before any
	// request, for a URL Config.AllowAttachmentURL refuses, and for a
	// redirect to another host (or one it refuses), which is not
	// followed.
	ErrAttachmentURL = errors.New("streamadapter: the attachment's URL, or a redirect, is not allowed")
)

// Reasons a received message did not decrypt: the Err of a [Message] whose
// Status is StatusFailed (or, for ErrPlaintext, StatusPlaintext) matches
// exactly one of them.
var (
	// ErrPlaintext flags a message in an encrypted channel that is not
	// encrypted: its text was written by whoever could write the channel
	// (a misconfigured client, Stream, a moderator's tool, or a system
	// message of Stream's) and authenticates nobody. Show it as such, if
	// at all.
	ErrPlaintext = errors.New("streamadapter: the message is not encrypted")
	// ErrUnknownSession is the reason for a message of a session this user
	// cannot find or verify (session.ErrUnknownSession, an invalid or
	// rolled-back membership log).
	ErrUnknownSession = errors.New("streamadapter: the message's session is unknown or does not verify")
	// ErrWrongSession is the reason for an envelope of another session
	// than the channel's: pasted from another channel.
	ErrWrongSession = errors.New("streamadapter: the message was sealed in another session than the channel's")
	// ErrNoKey is the reason for a message sealed under an epoch this user
	// was never given (session.ErrUnknownEpoch): sent before it joined with
	// hidden history. A removed member usually gets ErrRemoved instead,
	// since the key service no longer serves it the session; match both
	// to tell "removed or not yet allowed" from other failures.
	ErrNoKey = errors.New("streamadapter: no key for the message's epoch")
	// ErrRemoved is the reason for a message of a session this user is not,
	// or no longer, a member of: the key service refuses it the session's
	// log (session.ErrForbidden, session.ErrNotMember). Client.Channel
	// returns it for such a channel. Messages it read before stay readable
	// through a Channel it opened then.
	ErrRemoved = errors.New("streamadapter: not (or no longer) a member of the session")
	// ErrBadSignature is the reason for a message that decrypts but whose
	// signature does not verify under its claimed sender's card: forged by
	// another member of the session (session.ErrSignature).
	ErrBadSignature = errors.New("streamadapter: the message's signature does not verify")
	// ErrTampered is the reason for a message that does not authenticate:
	// its text, ID, sender, channel, thread, quote or revision changed
	// since it was sealed, or it is not an envelope at all though marked
	// encrypted (session.ErrDecrypt).
	ErrTampered = errors.New("streamadapter: the message was altered or moved")
	// ErrKeyChanged is the reason for a message whose sender's keys changed
	// without a chain from the keys this user trusted (it wraps the
	// *identity.KeyChangeError): verify the sender's safety number before
	// trusting them again.
	ErrKeyChanged = errors.New("streamadapter: the sender's keys changed")
	// ErrRolledBack is the reason for an edit older than one this client
	// already opened, shown again as current (session.ErrStaleRevision),
	// a second, different envelope for one revision, or another sender's
	// envelope for a message this client opened as someone else's
	// (session.ErrEquivocation).
	ErrRolledBack = errors.New("streamadapter: an older revision of the message was served as current")
	// ErrMalformed is the reason for a message that authenticates but whose
	// content is not a message this version understands (a newer format,
	// or a sender's bug).
	ErrMalformed = errors.New("streamadapter: the message's content is malformed")
	// ErrUnavailable is the reason for a message that could not be checked
	// because a service did not answer (the key service, the network, a
	// done context): try again later.
	ErrUnavailable = errors.New("streamadapter: a service needed to open the message did not answer")
)

// reasons are the sentinels a received message's Err matches, most
// specific first.
var reasons = []error{ErrPlaintext, ErrWrongSession, ErrBadSignature, ErrTampered, ErrNoKey, ErrRemoved,
	ErrKeyChanged, ErrRolledBack, ErrMalformed, ErrUnknownSession, ErrUnavailable}

// channelReason maps the error of verifying a message's channel (see
// Client.verifiedSession) onto the reason the message reports.
func channelReason(err error) error {
	switch {
	case errors.Is(err, ErrRemoved):
		return err
	case errors.Is(err, ErrNotEncrypted), errors.Is(err, ErrSessionMismatch):
		return fmt.Errorf("%w: the message's channel: %w", ErrUnknownSession, err)
	}
	return reason(err)
}

// reason maps an error of session.Manager.OpenBatch onto the reason a
// Message reports, wrapping the original.
func reason(err error) error {
	var kc *identity.KeyChangeError
	var r error
	switch {
	case errors.Is(err, session.ErrSignature):
		r = ErrBadSignature
	case errors.Is(err, session.ErrDecrypt), errors.Is(err, session.ErrMalformed), errors.Is(err, session.ErrUnknownVersion):
		r = ErrTampered
	case errors.Is(err, session.ErrUnknownEpoch):
		r = ErrNoKey
	case errors.Is(err, session.ErrForbidden), errors.Is(err, session.ErrNotMember):
		r = ErrRemoved
	case errors.As(err, &kc):
		r = ErrKeyChanged
	case errors.Is(err, session.ErrStaleRevision), errors.Is(err, session.ErrEquivocation):
		r = ErrRolledBack
	case errors.Is(err, session.ErrUnknownSession), errors.Is(err, session.ErrInvalidLog),
		errors.Is(err, session.ErrRollback), errors.Is(err, session.ErrFork),
		errors.Is(err, session.ErrWrongChannel), errors.Is(err, session.ErrKeyConflict):
		r = ErrUnknownSession
	default: // the network, a service's error, a done context
		r = ErrUnavailable
	}
	return fmt.Errorf("%w: %w", r, err)
}
