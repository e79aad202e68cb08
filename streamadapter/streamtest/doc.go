// Package streamtest is a local server that speaks Stream Chat's REST API as
// Stream's server-side SDKs use it (the Go client,
// github.com/GetStream/stream-chat-go/v6, and the request bodies of the
// JavaScript SDK), for tests, demos and offline development. Stream's
// servers are not needed.
//
// Point any stream-chat-go program at it with the STREAM_CHAT_URL
// environment variable (the client reads it in NewClient) or by setting
// Client.BaseURL; use the Server's APIKey and APISecret as credentials.
// `veil streamtest --addr 127.0.0.1:3030` runs one as a standalone process
// and prints the export lines to paste into a shell.
//
// Emulated: authentication (api_key parameter, HS256 JWTs signed with the
// app secret, Stream-Auth-Type, error codes 5 and 40–43); app settings
// (GetAppSettings and UpdateAppSettings, server-side only, code 17
// otherwise: webhook_url, before_message_send_hook_url and
// before_message_send_hook_attempt_timeout_ms, 0–5000 or code 4, take
// effect; other settings are kept and returned but change nothing); users
// (upsert, which replaces a user's data as Stream's does, query with
// filters, sort, limit/offset, partial update with dotted keys, deletion
// as an asynchronous task with GET tasks/{id}; batches are applied all or
// nothing); channels (get-or-create with an ID or distinct by members,
// given as user IDs or as {user_id, channel_role}, with the creator from
// created_by or created_by_id, or the token's user; a server-side creation
// naming neither is refused with code 4; users in invites become members
// with a pending invite; query with filters on type, id, cid, members,
// created_by_id, created_at, updated_at, member_count, last_message_at and
// custom fields, sort on any of them or on last_updated (the default,
// descending), limit/offset, and message_limit and member_limit; update, partial update of custom data
// such as session_id, update with a system message; truncate, which hides
// the messages up to truncated_at or now (hard_delete erases them), sets
// truncated_at and truncated_by (user_id or user) and then adds the
// message given as a system message; delete one, or several as an
// asynchronous task, soft or hard; a deletion task's result has
// {"status": "ok"} for each CID, or user ID for users; last_message_at follows the newest
// message shown, moving back when it is hard-deleted); members (add with
// hide_history and roles, remove, query with filters on the user's fields,
// also as user.<field>, and on id, user_id, channel_role, role,
// is_moderator, banned, invite, joined, created_at, updated_at,
// last_active and cid, sort on any of them, created_at ascending by
// default, limit/offset; moderators added and demoted, invites accepted or
// rejected with an optional system message, channel roles in responses);
// messages (send with a client-chosen ID, as the token's user or, server
// side, as user or user_id, code 4 when neither is given; replies with
// limit and id_lt/id_gt paging; get one or many; update, partial update,
// soft and hard delete, both answering the message with type "deleted"
// and deleted_at; html rendered from the text's markdown, CommonMark with
// HTML in the text shown as text; custom data flattened and preserved;
// mentioned_users as user objects; pinned always present, pin and unpin
// with expiry, pinned_by from user_id or the user object); the
// before-message-send hook (below); file and image upload with a URL
// serving the bytes back, and deletion; webhooks (message.new,
// message.updated, message.deleted, member.added, member.removed,
// channel.updated, channel.truncated, channel.deleted, delivered once each, in order, to the webhook_url app setting,
// with X-Webhook-Id, X-Webhook-Attempt, X-Api-Key and X-Signature = hex
// HMAC-SHA256 of the body under the app secret); limits (message text
// 5,000 characters, code 20; 5 KB of custom data per object, code 22;
// unknown objects code 16 with HTTP 404; malformed JSON code 4) and
// X-Ratelimit-* headers on every response. Filters take $eq, $ne, $in,
// $nin, $gt, $gte, $lt, $lte, $exists and $autocomplete (a case-insensitive
// substring), and $and, $or and $nor; timestamps compare as times.
//
// The before-message-send hook: with before_message_send_hook_url set,
// every message sent (POST .../message, replies and pending messages
// included) is first posted there, once, with the webhook headers
// and a body of the message as it will be stored (ID only if the client
// chose one, html empty), its author, the channel and request_info (type
// "client" for a user token, "server" otherwise; ip; user_agent; sdk from
// X-Stream-Client; ext from X-Stream-Ext). An empty 2xx answer, or one
// without a message, accepts it; {"message": {...}} rewrites text, i18n,
// show_in_channel, silent, attachments and custom fields, and ignores the
// rest; a message of type "error" rejects it: the sender gets back a
// message of type "error" with the hook's text, and nothing is stored or
// announced. Like Stream's, the hook fails open: no answer within the
// attempt timeout (1,500 ms unless
// before_message_send_hook_attempt_timeout_ms says otherwise), a status
// outside 2xx or an answer that is not JSON leaves the message as sent.
// As on Stream, updates and partial updates of messages do not go through
// the hook. Config.BeforeMessageSend is a Go form of the hook for tests;
// it runs first.
//
// Channel queries page their messages with limit, offset,
// id_lt/id_lte/id_gt/id_gte, id_around and created_at_* (25 newest by
// default) and their members with limit and offset. Pending messages are
// stored but stay out of the channel.
//
// A member added with hide_history does not see earlier messages when it
// queries the channel (POST .../query) with its own user token; other read
// paths (channel lists, single messages, replies) do not hide them yet, and
// the cut is by creation time, so a fixed Config.Now hides nothing.
//
// Server.Snapshot returns everything the server holds, including what the
// API no longer shows but Stream keeps (messages hidden by a truncation,
// soft-deleted channels and their messages, the versions an edit or soft
// deletion replaced) and every webhook and hook body sent, so that a test
// can look for plaintext that must not have reached Stream.
//
// Not emulated (yet): search, moderation, push (skip_push is accepted and
// changes nothing), reactions, bans (no member is banned), committing
// pending messages, retries of webhook and hook calls, the pausing of an
// unreachable hook, webhook_events and other event filters, the invite
// filter of channel queries, member paging by user_id_* and created_at_*,
// the $q and $contains operators, and channel type settings.
// Requests to unknown routes answer a Stream error with code 16.
//
// Permissions are not emulated either, apart from app settings, which
// need a server token: a token must verify, and name a user or be a
// server token, but a user token may then do what a server token does
// (act as another user, read channels it is not a member of, call
// server-side-only routes). Tests of authorization must not rely on the
// emulator refusing them. Webhook events are queued (1,024 at most) and
// dropped, with a warning in the log, behind a receiver that does not keep
// up. The server keeps every version and webhook body for Snapshot, so
// its memory grows with use.
package streamtest
