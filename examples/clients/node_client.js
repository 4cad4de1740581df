// Calls udshttpd over a Unix socket with Node's http module (socketPath).
//
//   node examples/clients/node_client.js /run/app.sock
const http = require("http");

const socketPath = process.argv[2];

function call(method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

(async () => {
  console.log("hello:", (await call("GET", "/hello")).body);
  const json = await call("GET", "/hello/Ada%20L", { headers: { Accept: "application/json" } });
  console.log("json:", JSON.parse(json.body).message);
  console.log("echo:", (await call("POST", "/echo", { body: "ping" })).body);
  const missing = await call("GET", "/nope");
  console.log("error:", missing.status, JSON.parse(missing.body).error.code);
})().catch((e) => {
  console.error("node_client:", e.message);
  process.exit(1);
});
