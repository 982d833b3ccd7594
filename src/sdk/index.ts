// walcast client SDK (browsers, bundlers, and Node with a WebSocket): `createClient`, channel
// subscriptions with exactly-once, in-order delivery across reconnects, and the protocol's
// shapes, codes and errors. See docs/protocol.md for the wire protocol underneath.
export { WalcastClient, createClient, gatewayUrl } from './client.js';
export type { AuthEvent, BackoffOptions, ClientOptions, ConnectionState, WebSocketConstructor, WebSocketLike } from './client.js';
export { ChannelSubscription, SubscriptionEnded } from './subscription.js';
export type { SubscribeOptions } from './subscription.js';
export { CLOSE, CLOSE_CODES, ERRORS, WalcastError, isTemporary, shouldReconnect } from '../protocol.js';
export type { Channel, ErrorCode, Message, ServerFrame, ClientFrame } from '../protocol.js';
