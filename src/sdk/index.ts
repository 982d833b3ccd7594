// walcast client SDK (browsers, bundlers, and Node): `createClient` for the real-time side
// (channel subscriptions with exactly-once, in-order delivery of every change, across
// reconnects, over a WebSocket or, where WebSockets are blocked, Server-Sent Events),
// `createApi` for the HTTP API, `watchChannel` for a channel model a chat UI renders, and the
// protocol's shapes, codes and errors. docs/protocol.md has the wire protocol.
export { WalcastClient, createClient, gatewayUrl } from './client.js';
export type { AuthEvent, BackoffOptions, ClientOptions, ConnectionState, Transport, WebSocketConstructor, WebSocketLike } from './client.js';
export { ChannelSubscription, SubscriptionEnded } from './subscription.js';
export type { SubscribeOptions } from './subscription.js';
export { WalcastApi, createApi } from './api.js';
export type { ApiOptions, History, Replay } from './api.js';
export { ChannelModel, watchChannel } from './channel-model.js';
export type { WatchOptions, WatchedChannel } from './channel-model.js';
export { CLOSE, CLOSE_CODES, ERRORS, WalcastError, isChangeFrame, isTemporary, shouldReconnect } from '../protocol.js';
export type { ChangeFrame, Channel, ClientFrame, ErrorCode, Message, ServerFrame } from '../protocol.js';
