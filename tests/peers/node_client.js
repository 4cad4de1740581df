// Drive a udshttp server with Node's http.request({socketPath}) and a keep-alive agent.
// Usage: node node_client.js SOCKET_PATH BODY_LIMIT. Prints 'node: N checks passed' and
// exits 0, or the first failure and exits 1.
'use strict';
const http = require('http');

const [socketPath, limitText] = process.argv.slice(2);
const bodyLimit = Number(limitText);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let checks = 0;
let sockets = 0;

function expect(cond, what) {
  if (!cond) throw new Error(what);
  checks += 1;
}

// One request; resolves to {status, headers, body}. `body` is a Buffer, an array of Buffers
// (written one by one: chunked), or undefined.
function call(method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method, headers, agent }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('socket', (s) => { if (!s.counted) { s.counted = true; sockets += 1; } });
    req.on('error', reject);
    if (Array.isArray(body)) body.forEach((b) => req.write(b));
    else if (body !== undefined) req.write(body);
    req.end();
  });
}

async function main() {
  let r = await call('GET', '/hello');
  expect(r.status === 200 && r.body.toString() === 'Hello Anonymous', `GET /hello ${r.status}`);
  r = await call('GET', '/hello/Ada', { headers: { Accept: 'application/json' } });
  expect(JSON.stringify(JSON.parse(r.body)) === '{"message":"Hello Ada","name":"Ada"}',
         `hello JSON ${r.body}`);

  const payload = Buffer.alloc(256 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = i % 256;
  r = await call('POST', '/echo', {
    headers: { 'Content-Type': 'application/x-node', 'Content-Length': payload.length },
    body: payload,
  });
  expect(r.headers['content-type'] === 'application/x-node', 'echo Content-Type');
  expect(r.body.equals(payload), 'echo bytes');

  const pieces = Array.from({ length: 40 }, (_, i) => Buffer.alloc(500 + i, i));
  r = await call('POST', '/echo', { body: pieces }); // no length: Node sends it chunked
  expect(r.status === 200 && r.body.equals(Buffer.concat(pieces)), 'chunked upload echo');

  r = await call('GET', '/nope');
  expect(r.status === 404 && JSON.parse(r.body).error.code === 'not_found', '404');
  r = await call('DELETE', '/echo');
  expect(r.status === 405 && r.headers.allow.includes('POST'), '405 with Allow');
  expect(sockets === 1, `one keep-alive connection, not ${sockets}`);

  const big = Buffer.alloc(bodyLimit + 1, 'x');
  r = await call('POST', '/echo', { headers: { 'Content-Length': big.length }, body: big });
  expect(r.status === 413 && JSON.parse(r.body).error.code === 'payload_too_large', '413');

  console.log(`node: ${checks} checks passed`);
  agent.destroy();
}

main().catch((e) => {
  console.log(`node: check failed: ${e.message}`);
  process.exit(1);
});
