// `walcast watch <channel>`: subscribe and print every frame, one JSON object per line.
import WebSocket from 'ws';
import { CLOSE, clientFrame } from '../protocol.js';

export async function watch(url: string, token: string, channel: string, since: number | undefined): Promise<number> {
  const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
  return new Promise((resolve) => {
    ws.on('open', () => ws.send(clientFrame.subscribe(channel, since)));
    ws.on('message', (data) => process.stdout.write(String(data) + '\n'));
    ws.on('unexpected-response', (_req, res) => {
      process.stderr.write(`walcast watch: upgrade refused with ${res.statusCode}\n`);
      resolve(1);
    });
    ws.on('error', (e) => {
      process.stderr.write(`walcast watch: ${e.message}\n`);
      resolve(1);
    });
    ws.on('close', (code, reason) => {
      process.stderr.write(`walcast watch: closed ${code} ${reason}\n`);
      resolve(code === CLOSE.normal ? 0 : 1);
    });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => ws.close(CLOSE.normal));
  });
}
