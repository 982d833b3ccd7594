// What nginx does in docker-compose.yml, for local topologies: HTTP to the api, WebSocket upgrades
// and SSE streams (/v1/sse) to the next live gateway (round robin, skipping gateways that refuse
// the connection). `upgrades` makes it a proxy that blocks WebSockets, as some corporate proxies
// do: `refuse` answers upgrades with its own 403 page, `hang` never answers them.
import http from 'node:http';
import net from 'node:net';
import { PATHS } from '../src/protocol.js';

export interface ProxyOptions {
  upgrades?: 'forward' | 'refuse' | 'hang';
}

/** HTTP to the api, WebSocket upgrades and SSE streams to the next live gateway: the role nginx plays in compose. */
export function startProxy(apiPort: () => number, gatewayPorts: () => number[], o: ProxyOptions = {}): http.Server {
  let next = 0;
  const server = http.createServer((req, res) => {
    const toGateway = (req.url ?? '').split('?')[0] === PATHS.sse;
    const ports = toGateway ? gatewayPorts() : [apiPort()];
    const tryPort = (attempt: number) => {
      const port = toGateway ? ports[next++ % ports.length]! : ports[0]!;
      const upstream = http.request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        // Streams (SSE) go through chunk by chunk, as nginx does with proxy_buffering off.
        res.flushHeaders();
        up.pipe(res);
      });
      upstream.on('error', () => {
        if (toGateway && !res.headersSent && attempt + 1 < ports.length) return tryPort(attempt + 1);
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"ok":false,"error":"unavailable"}');
      });
      res.on('close', () => upstream.destroy());
      if (toGateway) upstream.end();
      else req.pipe(upstream);
    };
    tryPort(0);
  });
  server.on('upgrade', (req, socket, head) => {
    if (o.upgrades === 'hang') {
      // Never answered; closed when the client gives up (the server allows half-open sockets).
      socket.on('error', () => {});
      socket.on('end', () => socket.destroy());
      return;
    }
    if (o.upgrades === 'refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n<h1>WebSockets are not allowed</h1>');
      return;
    }
    const ports = gatewayPorts();
    const tryPort = (attempt: number) => {
      if (attempt >= ports.length) return socket.destroy();
      const port = ports[next++ % ports.length]!;
      const up = net.connect(port, '127.0.0.1', () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`, ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`), '', ''];
        up.write(lines.join('\r\n'));
        if (head.length) up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.once('error', () => (up.bytesWritten === 0 ? tryPort(attempt + 1) : socket.destroy()));
      socket.once('error', () => up.destroy());
      socket.once('close', () => up.destroy());
      up.once('close', () => socket.destroy());
    };
    tryPort(0);
  });
  return server;
}
