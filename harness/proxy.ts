// What nginx does in docker-compose.yml, for local topologies: HTTP to the api, WebSocket upgrades
// to the next live gateway (round robin, skipping gateways that refuse the connection).
import http from 'node:http';
import net from 'node:net';

/** HTTP to the api, WebSocket upgrades to the next live gateway: the role nginx plays in compose. */
export function startProxy(apiPort: () => number, gatewayPorts: () => number[]): http.Server {
  let next = 0;
  const server = http.createServer((req, res) => {
    const upstream = http.request({ host: '127.0.0.1', port: apiPort(), path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"ok":false,"error":"unavailable"}');
    });
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
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
