// The SDK on Node 20, which has no global WebSocket: the same client, with the `ws` package as
// its WebSocket (which also lets it read the retry hint of a refused upgrade).
import WebSocket from 'ws';
import { WalcastClient, type ClientOptions, type WebSocketConstructor } from './index.js';

export * from './index.js';

/** Creates a client using `ws` unless another WebSocket is given, and starts connecting. */
export function createNodeClient(options: ClientOptions): WalcastClient {
  return new WalcastClient({ WebSocket: WebSocket as unknown as WebSocketConstructor, ...options });
}
