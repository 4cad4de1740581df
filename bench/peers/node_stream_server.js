// The Node peer of bench/stream_compare, of the same shape as udshttpd's routes:
//   GET /ws/echo           a WebSocket echo (the npm package `ws`)
//   POST /topics/{name}    publishes the body to the topic's subscribers, answers {"topic","id"}
//   GET /topics/{name}     subscribes as Server-Sent Events (id: and data: lines per message)
// Usage: node node_stream_server.js SOCKET_PATH   (NODE_PATH must reach `ws`)
// It listens on the Unix socket, and stops on SIGTERM.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const path = process.argv[2];
const topics = new Map(); // name -> { id, subscribers: Set<ServerResponse> }
const topic = (name) => {
  if (!topics.has(name)) topics.set(name, { id: 0, subscribers: new Set() });
  return topics.get(name);
};

const server = http.createServer((req, res) => {
  const m = /^\/topics\/([A-Za-z0-9._-]{1,64})$/.exec(req.url);
  if (!m) {
    res.writeHead(404).end();
    return;
  }
  const t = topic(m[1]);
  if (req.method === 'GET') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
    res.flushHeaders();
    t.subscribers.add(res);
    res.on('close', () => t.subscribers.delete(res));
    return;
  }
  if (req.method !== 'POST') {
    res.writeHead(405).end();
    return;
  }
  const parts = [];
  req.on('data', (d) => parts.push(d));
  req.on('end', () => {
    const id = ++t.id;
    const event = `id: ${id}\ndata: ${Buffer.concat(parts).toString()}\n\n`;
    for (const s of t.subscribers) s.write(event);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ topic: m[1], id }));
  });
});
server.keepAliveTimeout = 120000;

const wss = new WebSocketServer({ server, path: '/ws/echo', maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

server.listen(path);
process.on('SIGTERM', () => process.exit(0));
