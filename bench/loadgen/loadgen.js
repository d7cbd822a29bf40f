#!/usr/bin/env node
// One load generator for the project and both baselines (bench/README.md).
//
//   node loadgen.js '<json config>'   → prints one JSON result line on stdout
//
// Modes:
//   burst:    open `clients` subscribed sockets, publish `messages` as fast as `concurrency` allows,
//             count deliveries until all arrived or `timeout_s` passed → deliveries/s and losses.
//   latency:  open `clients` subscribed sockets, publish at `rate` per second for `duration_s`;
//             latency = receipt time − the time the publish request was sent, for every delivery.
//   connect:  open `clients` new authenticated sockets with `concurrency` in flight → connections/s.
//   hold:     open `clients` subscribed sockets, print {"ready": …}, keep them until stdin closes.
//   creates:  `writers` concurrent keep-alive HTTP clients POST to `create_urls` (writer i to url
//             i mod n) for `duration_s` → creates/s, errors, request latency p50/p99.
//   storm:    (RetroChat only) `clients` subscribed sockets while a publisher posts `rate` messages/s;
//             after `pre_s` every TCP connection is reset at once and every client reconnects and
//             subscribes with `since` → time until all have recovered, missing and duplicate events.
//
// Every WebSocket server under test speaks the same two frames: {"type":"subscribe","channel":C}
// answered by {"type":"subscribed",…}, and events whose data carries the published `content`.
// With "client": "socketio" the sockets are socket.io-client sockets (websocket transport, one
// connection each): the "subscribe" event is acknowledged, events arrive as "message:new".
//
// "sync": true (burst) prints {"phase":"ready"} once the sockets are subscribed and waits for a line
// on stdin before publishing, then {"phase":"measured"} after the last delivery and waits for another
// line before closing the sockets: bench/run.py reads the server's CPU time in between.
"use strict";
const http = require("http");
const readline = require("readline");
const WebSocket = require("ws");

const config = JSON.parse(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const now = () => Number(process.hrtime.bigint()) / 1e6; // milliseconds, monotonic

function connectOne(onEvent, index) {
  return config.client === "socketio" ? connectSocketIO(onEvent, index) : connectWS(onEvent, index);
}

function connectSocketIO(onEvent, index) {
  const { io } = require("socket.io-client");
  const url = config.ws_urls ? config.ws_urls[index % config.ws_urls.length] : config.ws_url;
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, timeout: 30000 });
    socket.terminate = () => socket.disconnect();
    const timer = setTimeout(() => { socket.disconnect(); reject(new Error("connect timeout")); }, 30000);
    socket.on("message:new", (payload) => {
      const content = payload && payload.data && payload.data.content;
      if (typeof content === "string" && content[0] === "m") onEvent(parseInt(content.slice(1), 10));
    });
    socket.on("connect_error", (err) => { clearTimeout(timer); reject(err); });
    socket.on("connect", () => {
      if (config.subscribe === false) {
        clearTimeout(timer);
        return resolve(socket);
      }
      socket.emit("subscribe", config.channel, (ack) => {
        clearTimeout(timer);
        if (ack && ack.type === "subscribed") resolve(socket);
        else reject(new Error(`subscribe answered ${JSON.stringify(ack)}`));
      });
    });
  });
}

function connectWS(onEvent, index) {
  // `ws_urls` spreads the sockets over several server processes, round robin.
  const url = config.ws_urls ? config.ws_urls[index % config.ws_urls.length] : config.ws_url;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: config.ws_headers || {}, perMessageDeflate: false });
    let state = "connecting";
    const timer = setTimeout(() => reject(new Error("connect timeout")), 30000);
    ws.on("message", (raw) => {
      const text = raw.toString();
      if (state === "subscribed") {
        const id = contentOf(text);
        return id === null ? undefined : onEvent(id);
      }
      const frame = JSON.parse(text);
      if (config.subscribe === false && frame.type === "connected") {
        state = "subscribed";
        clearTimeout(timer);
        return resolve(ws);
      }
      if (state === "connecting" && frame.type !== "subscribed") {
        // The project greets with `connected`; the baselines do not.
        state = "subscribing";
        ws.send(JSON.stringify({ type: "subscribe", channel: config.channel }));
        return;
      }
      if (frame.type === "subscribed") {
        state = "subscribed";
        clearTimeout(timer);
        resolve(ws);
      } else if (frame.type === "error") {
        clearTimeout(timer);
        reject(new Error(`${frame.code}: ${frame.message}`));
      }
    });
    ws.on("open", () => {
      if (config.subscribe === false && !config.greets) {
        clearTimeout(timer);
        return resolve(ws);
      }
      if (!config.greets) {
        state = "subscribing";
        ws.send(JSON.stringify({ type: "subscribe", channel: config.channel }));
      }
    });
    ws.on("error", (err) => { clearTimeout(timer); reject(err); });
  });
}

async function openMany(count, concurrency, onEvent) {
  const sockets = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      next += 1;
      sockets.push(await connectOne(onEvent, next));
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return sockets;
}

function publish(content, url = config.publish_url) {
  const body = JSON.stringify(config.publish_body_key ? { [config.publish_body_key]: content } : { content });
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST", agent,
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), ...(config.publish_headers || {}) },
    }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode < 300 ? resolve() : reject(new Error(`publish answered ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const contentOf = (text) => {
  // Cheaper than JSON.parse on the hot path: the content is "m<number>", once per frame, after
  // `"content":` with or without a space (servers differ in separators).
  const at = text.indexOf('"content":');
  if (at < 0) return null;
  const quote = text.indexOf('"m', at + 10);
  return quote < 0 || quote > at + 12 ? null : parseInt(text.slice(quote + 2), 10);
};

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function burst() {
  let received = 0;
  let lastAt = 0;
  let done;
  const expected = config.clients * config.messages;
  const finished = new Promise((r) => (done = r));
  const sockets = await openMany(config.clients, config.connect_concurrency || 50, () => {
    received += 1;
    lastAt = now();
    if (received === expected) done();
  });
  if (config.sync) await handshake({ phase: "ready", clients: sockets.length });
  const started = now();
  let sent = 0;
  async function publisher() {
    while (sent < config.messages) {
      sent += 1;
      await publish(`m${sent}`);
    }
  }
  await Promise.all(Array.from({ length: config.concurrency || 4 }, publisher));
  const publishedAt = now();
  await Promise.race([finished, new Promise((r) => setTimeout(r, (config.timeout_s || 30) * 1000))]);
  const seconds = ((received === expected ? lastAt : lastAt || now()) - started) / 1000;
  if (config.sync) await handshake({ phase: "measured", received });
  sockets.forEach((ws) => ws.terminate());
  return {
    mode: "burst", clients: config.clients, messages: config.messages, expected, received,
    lost: expected - received, seconds, publish_seconds: (publishedAt - started) / 1000,
    deliveries_per_second: received / seconds,
  };
}

async function latency() {
  const sentAt = new Map();
  const samples = [];
  const sockets = await openMany(config.clients, config.connect_concurrency || 50, (id) => {
    const at = sentAt.get(id);
    if (at !== undefined) samples.push(now() - at);
  });
  const total = Math.round(config.rate * config.duration_s);
  const interval = 1000 / config.rate;
  const start = now();
  const inflight = [];
  for (let i = 1; i <= total; i += 1) {
    const due = start + (i - 1) * interval;
    const wait = due - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sentAt.set(i, now());
    inflight.push(publish(`m${i}`));
  }
  // An overloaded server may never catch up: wait at most 10 s for publishes, then 2 s for
  // stragglers; what has not arrived by then counts as lost.
  await Promise.race([Promise.allSettled(inflight), new Promise((r) => setTimeout(r, 10000))]);
  await new Promise((r) => setTimeout(r, 2000));
  sockets.forEach((ws) => ws.terminate());
  samples.sort((a, b) => a - b);
  const expected = total * config.clients;
  return {
    mode: "latency", clients: config.clients, rate: config.rate, duration_s: config.duration_s,
    expected, received: samples.length, lost: expected - samples.length,
    p50_ms: percentile(samples, 50), p99_ms: percentile(samples, 99), max_ms: samples[samples.length - 1] ?? null,
  };
}

async function connect() {
  const started = now();
  const sockets = await openMany(config.clients, config.concurrency || 100, () => {});
  const seconds = (now() - started) / 1000;
  sockets.forEach((ws) => ws.terminate());
  return { mode: "connect", clients: config.clients, seconds, connections_per_second: config.clients / seconds };
}

async function hold() {
  const sockets = await openMany(config.clients, config.connect_concurrency || 100, () => {});
  process.stdout.write(JSON.stringify({ mode: "hold", ready: sockets.length }) + "\n");
  await new Promise((r) => process.stdin.on("end", r).resume());
  sockets.forEach((ws) => ws.terminate());
  return null;
}

// --- sync with bench/run.py (CPU time is read between the phases) ------------------------------
let stdinLines = null;
function handshake(message) {
  if (!stdinLines) {
    const queue = [];
    const waiters = [];
    readline.createInterface({ input: process.stdin }).on("line", (line) => {
      if (waiters.length) waiters.shift()(line);
      else queue.push(line);
    });
    stdinLines = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  }
  process.stdout.write(JSON.stringify(message) + "\n");
  return stdinLines();
}

// --- creates: REST writes per second ------------------------------------------------------------
async function creates() {
  const urls = config.create_urls;
  const writers = config.writers || 8;
  const createAgent = new http.Agent({ keepAlive: true, maxSockets: writers });
  const latencies = [];
  const errors = {};
  let ok = 0;
  const deadline = now() + config.duration_s * 1000;
  let counter = 0;
  function post(url) {
    counter += 1;
    const body = JSON.stringify({ content: `c${counter}` });
    return new Promise((resolve) => {
      const req = http.request(url, {
        method: "POST", agent: createAgent,
        headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), ...(config.publish_headers || {}) },
      }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      });
      req.setTimeout(30000, () => req.destroy(new Error("timeout")));
      req.on("error", (err) => resolve(err.code || err.message));
      req.end(body);
    });
  }
  const started = now();
  async function writer(i) {
    const url = urls[i % urls.length];
    while (now() < deadline) {
      const at = now();
      const status = await post(url);
      if (typeof status === "number" && status < 300) {
        ok += 1;
        latencies.push(now() - at);
      } else {
        errors[status] = (errors[status] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: writers }, (_, i) => writer(i)));
  const seconds = (now() - started) / 1000;
  createAgent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    mode: "creates", writers, urls: urls.length, seconds, created: ok, errors,
    creates_per_second: ok / seconds, p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99),
  };
}

// --- storm: every connection reset at once, reconnect with `since` -----------------------------
async function storm() {
  const channel = config.channel;
  const clients = [];
  let phase = "start";
  let stormAt = 0;

  function open(client) {
    // One socket of `client`; a reconnect replaces it (frames of an old socket are ignored).
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(config.ws_url, { headers: config.ws_headers || {}, perMessageDeflate: false });
      client.ws = ws;
      const timer = setTimeout(() => reject(new Error("connect timeout")), 60000);
      ws.on("error", (err) => { clearTimeout(timer); if (client.ws === ws) reject(err); });
      ws.on("close", () => { if (client.ws === ws && client.subscribed) client.closedUnexpectedly += 1; });
      ws.on("message", (raw) => {
        if (client.ws !== ws) return;
        const frame = JSON.parse(raw.toString());
        if (frame.type === "connected") {
          const subscribe = { type: "subscribe", channel, ref: 1 };
          if (client.epoch !== null) subscribe.since = { offset: client.contiguous, epoch: client.epoch };
          ws.send(JSON.stringify(subscribe));
        } else if (frame.type === "subscribed") {
          clearTimeout(timer);
          client.subscribed = true;
          if (client.epoch === null) {
            client.epoch = frame.epoch;
            client.base = client.contiguous = frame.offset;
          } else {
            client.resubscribedAt = now();
            client.target = frame.offset;
            if (frame.recovered !== true) client.notRecovered += 1;
            if (frame.epoch !== client.epoch) client.epochChanged += 1;
          }
          resolve();
          client.check();
        } else if (frame.type === "error") {
          clearTimeout(timer);
          reject(new Error(`${frame.code}: ${frame.message}`));
        } else if (frame.channel === channel && typeof frame.offset === "number") {
          client.counts.set(frame.offset, (client.counts.get(frame.offset) || 0) + 1);
          if (client.target !== null && frame.offset <= client.target) client.replayed += 1;  // missed while away
          while (client.counts.has(client.contiguous + 1)) client.contiguous += 1;
          client.check();
        }
      });
    });
  }

  for (let i = 0; i < config.clients; i += 1) {
    const client = {
      ws: null, epoch: null, base: 0, contiguous: 0, counts: new Map(), subscribed: false, replayed: 0,
      resubscribedAt: null, target: null, recoveredAt: null, notRecovered: 0, epochChanged: 0, closedUnexpectedly: 0,
    };
    client.check = () => {
      if (phase === "storm" && client.recoveredAt === null && client.target !== null && client.contiguous >= client.target) {
        client.recoveredAt = now();
      }
    };
    clients.push(client);
  }
  // Open and subscribe everyone, `connect_concurrency` at a time.
  let next = 0;
  async function opener() {
    while (next < clients.length) {
      const client = clients[next];
      next += 1;
      await open(client);
    }
  }
  await Promise.all(Array.from({ length: config.connect_concurrency || 100 }, opener));

  // A steady publisher through the REST API.
  let published = 0;
  let publishErrors = 0;
  let publishing = true;
  const inflight = new Set();
  const publisher = (async () => {
    const interval = 1000 / config.rate;
    const start = now();
    for (let i = 1; publishing && i <= config.rate * (config.max_s || 120); i += 1) {
      const wait = start + (i - 1) * interval - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const p = publish(`m${i}`).then(() => { published += 1; }, () => { publishErrors += 1; });
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    }
  })();

  await new Promise((r) => setTimeout(r, config.pre_s * 1000));
  // The storm: reset every TCP connection at once, then reconnect everyone at once.
  phase = "storm";
  stormAt = now();
  for (const client of clients) {
    const socket = client.ws._socket;
    client.subscribed = false;
    client.ws = null;
    if (socket && socket.resetAndDestroy) socket.resetAndDestroy();
    else if (socket) socket.destroy();
  }
  const reconnectErrors = [];
  await Promise.all(clients.map((client) => open(client).catch((err) => reconnectErrors.push(String(err.message || err)))));
  const allResubscribedAt = now();
  const deadline = now() + (config.timeout_s || 30) * 1000;
  while (now() < deadline && clients.some((c) => c.recoveredAt === null && c.notRecovered === 0 && c.subscribed)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const allRecoveredAt = Math.max(...clients.map((c) => c.recoveredAt || now()));
  // Events keep flowing for `post_s`, then the publisher stops and the stream's head is read with a
  // fresh subscription: every client must have every event after its first `subscribed` up to it.
  await new Promise((r) => setTimeout(r, config.post_s * 1000));
  publishing = false;
  await publisher;
  await Promise.allSettled([...inflight]);
  const probe = { ws: null, epoch: null, base: 0, contiguous: 0, counts: new Map(), subscribed: false, check() {} };
  await open(probe);
  const head = probe.base;
  probe.ws.terminate();
  const settleDeadline = now() + 10000;
  while (now() < settleDeadline && clients.some((c) => c.contiguous < head)) await new Promise((r) => setTimeout(r, 20));

  let missing = 0, duplicates = 0, clientsMissing = 0, clientsDuplicated = 0, notRecovered = 0, epochChanged = 0;
  const recoveries = [];
  for (const c of clients) {
    let m = 0, d = 0;
    for (let offset = c.base + 1; offset <= head; offset += 1) {
      const n = c.counts.get(offset) || 0;
      if (n === 0) m += 1;
      else d += n - 1;
    }
    missing += m; duplicates += d;
    if (m) clientsMissing += 1;
    if (d) clientsDuplicated += 1;
    notRecovered += c.notRecovered;
    epochChanged += c.epochChanged;
    if (c.recoveredAt !== null) recoveries.push(c.recoveredAt - stormAt);
  }
  clients.forEach((c) => c.ws && c.ws.terminate());
  recoveries.sort((a, b) => a - b);
  return {
    mode: "storm", clients: clients.length, rate: config.rate, published, publish_errors: publishErrors,
    head_offset: head, reconnect_errors: reconnectErrors.length, reconnect_error_sample: reconnectErrors.slice(0, 3),
    recovered: recoveries.length, not_recovered: notRecovered, replayed: clients.reduce((n, c) => n + c.replayed, 0), epoch_changed: epochChanged,
    all_resubscribed_s: (allResubscribedAt - stormAt) / 1000, all_recovered_s: (allRecoveredAt - stormAt) / 1000,
    recovery_p50_s: (percentile(recoveries, 50) ?? NaN) / 1000, recovery_p99_s: (percentile(recoveries, 99) ?? NaN) / 1000,
    missing, duplicates, clients_missing: clientsMissing, clients_duplicated: clientsDuplicated,
  };
}

const modes = { burst, latency, connect, hold, creates, storm };
modes[config.mode]()
  .then((result) => { if (result) process.stdout.write(JSON.stringify(result) + "\n"); process.exit(0); })
  .catch((err) => { process.stdout.write(JSON.stringify({ error: String(err && err.message || err) }) + "\n"); process.exit(1); });
