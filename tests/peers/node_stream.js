// Read udshttpd's NDJSON topic stream with Node's http.request({socketPath}): each message
// arrives as it is published, on one open response. Usage: node node_stream.js SOCKET_PATH.
// Prints 'node-stream: N checks passed' and exits 0, or the first failure and exits 1.
'use strict';
const http = require('http');

const [socketPath] = process.argv.slice(2);
let checks = 0;

function expect(cond, what) {
  if (!cond) throw new Error(what);
  checks += 1;
}

function publish(body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: '/topics/node', method: 'POST',
                               headers: { 'Content-Type': 'text/plain' } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function main() {
  const lines = [];
  let wake = null;
  const res = await new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: '/topics/node',
                               headers: { Accept: 'application/x-ndjson' } }, resolve);
    req.on('error', reject);
    req.end();
  });
  expect(res.statusCode === 200, `status ${res.statusCode}`);
  expect(res.headers['transfer-encoding'] === 'chunked', 'chunked');
  let buffered = '';
  res.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (wake) wake();
    }
  });
  const next = () => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no line within 5 s')), 5000);
    const look = () => {
      if (lines.length > 0) { clearTimeout(timer); wake = null; resolve(lines.shift()); }
    };
    wake = look;
    look();
  });
  for (let i = 0; i < 3; i += 1) {
    const sent = await publish(`node ${i}`);
    expect(sent.id === i + 1, `publish id ${sent.id}`);
    const line = JSON.parse(await next());
    expect(line.type === 'message' && line.id === i + 1 && line.data === `node ${i}`,
           `line ${JSON.stringify(line)}`);
  }
  res.destroy();
}

main().then(() => {
  console.log(`node-stream: ${checks} checks passed`);
  process.exit(0);
}, (e) => {
  console.log(`node-stream: check failed: ${e.message}`);
  process.exit(1);
});
