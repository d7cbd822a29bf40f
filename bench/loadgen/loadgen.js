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
//
// Every server under test speaks the same two frames: {"type":"subscribe","channel":C} answered by
// {"type":"subscribed",…}, and events whose data carries the published `content`.
"use strict";
const http = require("http");
const WebSocket = require("ws");

const config = JSON.parse(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const now = () => Number(process.hrtime.bigint()) / 1e6; // milliseconds, monotonic

function connectOne(onEvent, index) {
  // `ws_urls` spreads the sockets over several server processes, round robin.
  const url = config.ws_urls ? config.ws_urls[index % config.ws_urls.length] : config.ws_url;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: config.ws_headers || {}, perMessageDeflate: false });
    let state = "connecting";
    const timer = setTimeout(() => reject(new Error("connect timeout")), 30000);
    ws.on("message", (raw) => {
      const text = raw.toString();
      if (state === "subscribed") return onEvent(text);
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

function publish(content) {
  const body = JSON.stringify(config.publish_body_key ? { [config.publish_body_key]: content } : { content });
  return new Promise((resolve, reject) => {
    const req = http.request(config.publish_url, {
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
  const sockets = await openMany(config.clients, config.connect_concurrency || 50, (text) => {
    if (contentOf(text) === null) return;
    received += 1;
    lastAt = now();
    if (received === expected) done();
  });
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
  const sockets = await openMany(config.clients, config.connect_concurrency || 50, (text) => {
    const id = contentOf(text);
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

const modes = { burst, latency, connect, hold };
modes[config.mode]()
  .then((result) => { if (result) process.stdout.write(JSON.stringify(result) + "\n"); process.exit(0); })
  .catch((err) => { process.stdout.write(JSON.stringify({ error: String(err && err.message || err) }) + "\n"); process.exit(1); });
