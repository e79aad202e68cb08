// Package streamtest is a local server that speaks Stream Chat's REST API as
// the official Go client (github.com/GetStream/stream-chat-go/v6) uses it,
// for tests, demos and offline development. Stream's servers are not needed.
//
// Point any stream-chat-go program at it with the STREAM_CHAT_URL
// environment variable (the client reads it in NewClient) or by setting
// Client.BaseURL; use the Server's APIKey and APISecret as credentials.
// `veil streamtest --addr 127.0.0.1:3030` runs one as a standalone process
// and prints the export lines to paste into a shell.
//
// Emulated: authentication (api_key parameter, HS256 JWTs signed with the
// app secret, Stream-Auth-Type, error codes 5 and 40–43); users (upsert,
// which replaces a user's data as Stream's does, query with
// $eq/$in/$autocomplete, sort, limit/offset, partial update with dotted
// keys, deletion as an asynchronous task with GET tasks/{id}; batches are
// applied all or nothing);
// channels (get-or-create with an ID or distinct by members,
// query with type/id/cid/members/custom-field filters and $and/$or, update,
// partial update of custom data such as session_id, update with a system
// message, truncate, delete one, or several as an asynchronous task, soft or
// hard); members (add with hide_history and roles,
// remove, query, moderators added and demoted, invites accepted or
// rejected, channel roles in responses); messages (send
// with a client-chosen ID, replies with limit and id_lt/id_gt paging, get
// one or many, update, partial update, soft and hard delete, html rendered
// from text, custom data flattened and preserved, pin and unpin with
// expiry, Config.BeforeMessageSend to reject or rewrite messages as Stream's
// before-message-send hook does); file and image upload
// with a URL serving the bytes back, and deletion;
// webhooks (message.new/updated/deleted, member.added/removed,
// channel.updated/deleted, delivered in order with X-Signature = hex
// HMAC-SHA256 of the body under the app secret); limits (message text 5,000
// characters, code 20; 5 KB of custom data per object, code 22; unknown
// objects code 16 with HTTP 404; malformed JSON code 4) and X-Ratelimit-*
// headers on every response.
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
// Not emulated (yet): search, moderation, push, reactions, bans,
// committing pending messages, and the HTTP form of the
// before-message-send hook (Config.BeforeMessageSend is its Go form).
// Requests to unknown routes answer a Stream error with code 16.
//
// Permissions are not emulated either: a token must verify, and name a
// user or be a server token, but a user token may then do what a server
// token does (act as another user, read channels it is not a member of,
// call server-side-only routes). Tests of authorization must not rely on
// the emulator refusing them. Webhook events are queued (1,024 at most)
// and dropped, with a warning in the log, behind a receiver that does not
// keep up.
package streamtest
