// RetroChat realtime client: one dependency-free ES module for browsers and Node (>= 20).
//
//   import { RetroChatClient } from "/static/retrochat.js";          // a page
//   import { RetroChatClient } from "./clients/js/retrochat.js";     // Node, with `ws`:
//   const client = new RetroChatClient({ url, apiKey, WebSocket: (await import("ws")).WebSocket });
//
// What it does so that applications do not: connection states as events; reconnect with
// exponential backoff and full jitter, honouring close codes; resubscribe after a reconnect with
// `since` (the missed events arrive in order, or a `refetch` event says to reload over REST);
// dead-peer detection; de-duplication by offset; errors carrying the server's code.
// docs/clients.md is the guide; retrochat.d.ts has the types.

export const SUBPROTOCOL = "retrochat.v1";

/** Close codes after which the client stops instead of reconnecting (same credential, same answer). */
const STOP_CODES = new Map([
  [4001, "UNAUTHORIZED"],
  [4003, "FORBIDDEN_ORIGIN"],
]);
/** Close codes that ask for a longer wait before the next attempt. */
const BACK_OFF_CODES = new Set([4029, 1013]);
/** The attempt number a BACK_OFF_CODES close counts as, at least: a window of 2^4 s. */
const BACK_OFF_ATTEMPT = 4;
/** Closes that the client itself decides on (never sent by the server). */
const CLOSE_NORMAL = 1000;
const CLOSE_DEAD_PEER = 4000;

const CATEGORY_OF_KIND = { message: "message", room: "room", user: "activity", conversation: "conversation" };

/** A frame's event category: `message:new` → `message`, `user:online` → `activity`. */
export function categoryOf(eventType) {
  return CATEGORY_OF_KIND[eventType.split(":", 1)[0]];
}

function filterMatches(filter, eventType) {
  return filter === "*" || filter === eventType || filter === categoryOf(eventType);
}

/** An error with the server's stable `code` (`FORBIDDEN`, `UNAUTHORIZED`, …) when it sent one. */
export class RetroChatError extends Error {
  constructor(code, message, { ref, closeCode } = {}) {
    super(message);
    this.name = "RetroChatError";
    this.code = code;
    if (ref !== undefined) this.ref = ref;
    if (closeCode !== undefined) this.closeCode = closeCode;
  }
}

class Emitter {
  #listeners = new Map();

  /** Call `listener` for every `name` event; returns a function that removes it. */
  on(name, listener) {
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(listener);
    return () => this.off(name, listener);
  }

  off(name, listener) {
    this.#listeners.get(name)?.delete(listener);
  }

  /** The next `name` event, as a promise. */
  once(name) {
    return new Promise((resolve) => {
      const off = this.on(name, (value) => {
        off();
        resolve(value);
      });
    });
  }

  emit(name, value) {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) {
      try {
        listener(value);
      } catch (error) {
        // A listener's bug must not break delivery to the others, nor the connection.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/**
 * One `subscribe(channel, event)`: its own events, its position in the channel's stream, and
 * `unsubscribe()`. Subscriptions survive reconnects: the client subscribes again with `since`.
 */
export class Subscription extends Emitter {
  constructor(client, channel, event, since) {
    super();
    this.client = client;
    this.channel = channel;
    this.event = event;
    /** "subscribing" | "subscribed" | "unsubscribed" | "failed" */
    this.state = "subscribing";
    /** The newest event of the channel this subscription has seen: `{offset, epoch}`, or null. */
    this.position = since ? { offset: since.offset, epoch: since.epoch } : null;
    /** The `presence` of the last `subscribed` frame (room or user activity), or null. */
    this.presence = null;
  }

  unsubscribe() {
    if (this.state === "unsubscribed") return;
    this.state = "unsubscribed";
    this.client._remove(this);
  }

  /** Whether an event frame is new to this subscription (and move its position to it). */
  _advance(frame) {
    if (typeof frame.offset !== "number") return true; // presence events carry no offset
    if (this.position && frame.epoch === this.position.epoch && frame.offset <= this.position.offset) return false;
    this.position = { offset: frame.offset, epoch: frame.epoch };
    return true;
  }
}

export class RetroChatClient extends Emitter {
  /**
   * @param {object} options
   * @param {string} options.url `ws(s)://host/v1/realtime`
   * @param {string} [options.apiKey] a key (servers, Node); a page uses `getToken` instead
   * @param {() => Promise<string>} [options.getToken] a fresh connection token for each (re)connect
   * @param {Function} [options.WebSocket] the WebSocket class (Node 20: `ws`); default the global one
   */
  constructor({
    url,
    apiKey,
    getToken,
    WebSocket: WebSocketClass = globalThis.WebSocket,
    backoffBaseMs = 1000,
    backoffMaxMs = 30000,
    heartbeatMarginMs = 10000,
    pingTimeoutMs = 10000,
    connectTimeoutMs = 15000,
    autoConnect = true,
  }) {
    super();
    if (!url) throw new TypeError("RetroChatClient needs a url");
    if (!WebSocketClass) throw new TypeError("No WebSocket implementation: pass one (e.g. `ws`) as the WebSocket option");
    if (!apiKey && !getToken) throw new TypeError("RetroChatClient needs an apiKey or a getToken callback");
    this.url = url;
    this.options = { apiKey, getToken, WebSocketClass, backoffBaseMs, backoffMaxMs, heartbeatMarginMs, pingTimeoutMs, connectTimeoutMs };
    /** "connecting" | "connected" | "disconnected" | "closed" */
    this.state = "closed";
    /** The server's `connected` frame of the current connection, or null. */
    this.info = null;
    this.attempt = 0;
    this.socket = null;
    this.subscriptions = new Set();
    this.pending = new Map(); // ref → {resolve, reject} of ping/list requests
    this.subscribing = new Map(); // ref → Subscription awaiting its `subscribed`
    this.nextRef = 1;
    this.timers = { retry: null, silence: null, ping: null, connect: null };
    this.generation = 0; // bumped per socket; late callbacks of an old socket are ignored
    this.stopped = false;
    // After the caller's synchronous code, so that listeners added right after `new` see "connecting".
    if (autoConnect) queueMicrotask(() => this.state === "closed" && !this.stopped && this.connect());
  }

  // --- public API ------------------------------------------------------------------------------

  /** Open the connection (again, after close()). */
  connect() {
    if (this.state === "connecting" || this.state === "connected") return;
    this.stopped = false;
    this.#open();
  }

  /** Close for good: no reconnect; subscriptions are kept for a later connect(). */
  close() {
    if (this.stopped && this.state === "closed") return;
    this.stopped = true;
    this.#clearTimers();
    this.#dropSocket(CLOSE_NORMAL, "client closed");
    this.#setState("closed", { code: CLOSE_NORMAL, reason: "client closed" });
  }

  /**
   * Subscribe to `event` (default "*": everything you may see) on `channel` ("room:7").
   * `since: {offset, epoch}` starts from a known position (the events after it are replayed).
   */
  subscribe(channel, event = "*", { since } = {}) {
    const subscription = new Subscription(this, channel, event, since);
    this.subscriptions.add(subscription);
    if (this.state === "connected") this.#sendSubscribe(subscription);
    return subscription;
  }

  /** A `ping` round trip: resolves with the `pong` frame. */
  ping() {
    return this.#request({ type: "ping" });
  }

  /** The server's view of this connection's subscriptions. */
  listSubscriptions() {
    return this.#request({ type: "list_subscriptions" }).then((frame) => frame.subscriptions);
  }

  // --- connection ------------------------------------------------------------------------------

  async #open() {
    const generation = ++this.generation;
    this.#setState("connecting", { attempt: this.attempt });
    let credential;
    try {
      credential = this.options.apiKey ?? (await this.options.getToken());
    } catch (error) {
      if (generation !== this.generation || this.stopped) return;
      this.emit("error", new RetroChatError("TOKEN_UNAVAILABLE", `Could not get a connection token: ${error?.message ?? error}`));
      this.#scheduleReconnect(null, "no token");
      return;
    }
    if (generation !== this.generation || this.stopped) return;
    let socket;
    try {
      socket = new this.options.WebSocketClass(this.url, [SUBPROTOCOL, `bearer.${credential}`]);
    } catch (error) {
      this.emit("error", new RetroChatError("CONNECT_FAILED", String(error?.message ?? error)));
      this.#scheduleReconnect(null, "could not open");
      return;
    }
    this.socket = socket;
    this.lastErrorCode = null;
    socket.onmessage = (event) => generation === this.generation && this.#onMessage(event.data);
    socket.onclose = (event) => generation === this.generation && this.#onClose(event.code, event.reason);
    socket.onerror = () => {}; // a close event always follows; its code says what to do
    this.timers.connect = setTimeout(() => {
      if (generation === this.generation) this.#onClose(CLOSE_DEAD_PEER, "connect timeout", true);
    }, this.options.connectTimeoutMs);
  }

  #onMessage(data) {
    let frame;
    try {
      frame = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      this.emit("error", new RetroChatError("INVALID_JSON", "The server sent a frame that is not JSON"));
      return;
    }
    this.#heard();
    switch (frame.type) {
      case "connected":
        return this.#onConnected(frame);
      case "subscribed":
        return this.#onSubscribed(frame);
      case "unsubscribed":
        return this.#onUnsubscribed(frame);
      case "error":
        return this.#onError(frame);
      case "pong":
      case "subscriptions":
        return this.#settle(frame.ref, frame);
      default:
        if (typeof frame.channel === "string" && frame.type.includes(":")) return this.#onEvent(frame);
        this.emit("frame", frame); // a frame type this version does not know
    }
  }

  #onConnected(frame) {
    clearTimeout(this.timers.connect);
    this.info = frame;
    this.attempt = 0;
    this.#setState("connected", frame);
    for (const subscription of this.subscriptions) {
      if (subscription.state !== "failed") this.#sendSubscribe(subscription);
    }
  }

  #onClose(code, reason, abandon = false) {
    if (abandon) this.#dropSocket(CLOSE_DEAD_PEER, reason);
    this.socket = null;
    this.generation++;
    this.#clearTimers();
    this.#failPending(new RetroChatError("DISCONNECTED", `The connection closed (${code})`, { closeCode: code }));
    if (this.stopped) return;
    for (const subscription of this.subscriptions) {
      if (subscription.state === "subscribed") subscription.state = "subscribing";
    }
    const stopCode = STOP_CODES.get(code);
    if (stopCode) {
      this.stopped = true;
      const error = new RetroChatError(stopCode, `The server refused the connection (close ${code}); not retrying with this credential`, { closeCode: code });
      if (this.lastErrorCode !== stopCode) this.emit("error", error); // the server's error frame said it already
      this.#setState("closed", { code, reason, error });
      return;
    }
    this.#scheduleReconnect(code, reason);
  }

  #scheduleReconnect(code, reason) {
    if (BACK_OFF_CODES.has(code)) this.attempt = Math.max(this.attempt, BACK_OFF_ATTEMPT);
    const windowMs = Math.min(this.options.backoffMaxMs, this.options.backoffBaseMs * 2 ** this.attempt);
    const delay = Math.random() * windowMs; // full jitter
    this.attempt++;
    this.#setState("disconnected", { code, reason, reconnectInMs: delay });
    this.timers.retry = setTimeout(() => this.#open(), delay);
  }

  #dropSocket(code, reason) {
    const socket = this.socket;
    this.socket = null;
    this.generation++;
    if (!socket) return;
    socket.onmessage = socket.onclose = null;
    try {
      if (typeof socket.terminate === "function" && code === CLOSE_DEAD_PEER) socket.terminate(); // ws: no close handshake with a dead peer
      else socket.close(code, reason);
    } catch {
      // already closed
    }
  }

  // --- dead-peer detection -------------------------------------------------------------------

  /** Any frame proves the server alive; after heartbeat_interval + a margin of silence, ping. */
  #heard() {
    clearTimeout(this.timers.silence);
    clearTimeout(this.timers.ping);
    this.timers.ping = null;
    const interval = (this.info?.heartbeat_interval ?? 25) * 1000;
    const generation = this.generation;
    this.timers.silence = setTimeout(() => {
      if (generation !== this.generation) return;
      this.#send({ type: "ping", ref: `hb${this.nextRef++}` });
      this.timers.ping = setTimeout(() => {
        if (generation === this.generation) this.#onClose(CLOSE_DEAD_PEER, "no answer from the server", true);
      }, this.options.pingTimeoutMs);
    }, interval + this.options.heartbeatMarginMs);
  }

  #clearTimers() {
    for (const name of Object.keys(this.timers)) {
      clearTimeout(this.timers[name]);
      this.timers[name] = null;
    }
  }

  // --- frames ----------------------------------------------------------------------------------

  #send(frame) {
    if (!this.socket || this.socket.readyState !== 1) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  #request(frame) {
    const ref = `r${this.nextRef++}`;
    return new Promise((resolve, reject) => {
      if (!this.#send({ ...frame, ref })) {
        reject(new RetroChatError("DISCONNECTED", "Not connected"));
        return;
      }
      this.pending.set(ref, { resolve, reject });
    });
  }

  #settle(ref, frame, error) {
    const waiting = this.pending.get(ref);
    if (!waiting) return false;
    this.pending.delete(ref);
    if (error) waiting.reject(error);
    else waiting.resolve(frame);
    return true;
  }

  #failPending(error) {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
    this.subscribing.clear();
  }

  #sendSubscribe(subscription) {
    const ref = `s${this.nextRef++}`;
    const frame = { type: "subscribe", channel: subscription.channel, event: subscription.event, ref };
    if (subscription.position) frame.since = subscription.position;
    subscription.state = "subscribing";
    subscription.recovering = Boolean(subscription.position);
    this.subscribing.set(ref, subscription);
    this.#send(frame);
  }

  #onSubscribed(frame) {
    const subscription = this.subscribing.get(frame.ref);
    if (!subscription) return;
    this.subscribing.delete(frame.ref);
    if (subscription.state === "unsubscribed") return;
    const resubscribed = subscription.recovering;
    subscription.state = "subscribed";
    if (frame.presence !== undefined) subscription.presence = frame.presence;
    const position = { offset: frame.offset, epoch: frame.epoch };
    if (frame.recovered === false || !subscription.position) subscription.position = position;
    subscription.emit("subscribed", { ...position, recovered: frame.recovered, presence: frame.presence, resubscribed });
    if (frame.recovered === false) subscription.emit("refetch", position);
  }

  #onUnsubscribed(frame) {
    if (!frame.reason) return; // the answer to our own unsubscribe
    for (const subscription of this.#onChannel(frame.channel)) {
      subscription.state = "unsubscribed";
      this.subscriptions.delete(subscription);
      subscription.emit("unsubscribed", { reason: frame.reason });
    }
  }

  #onError(frame) {
    const error = new RetroChatError(frame.code, frame.message, { ref: frame.ref });
    this.lastErrorCode = frame.code;
    const subscription = frame.ref !== undefined ? this.subscribing.get(frame.ref) : undefined;
    if (subscription) {
      this.subscribing.delete(frame.ref);
      if (frame.code === "RATE_LIMITED") {
        // The frame was dropped: ask again shortly, on this connection.
        const generation = this.generation;
        setTimeout(() => generation === this.generation && subscription.state === "subscribing" && this.#sendSubscribe(subscription), 1000);
        return;
      }
      subscription.state = "failed";
      subscription.emit("error", error);
      return;
    }
    if (frame.ref !== undefined && this.#settle(frame.ref, null, error)) return;
    this.emit("error", error);
  }

  #onEvent(frame) {
    for (const subscription of this.#onChannel(frame.channel)) {
      // A subscription waiting for its `subscribed` gets nothing yet: what it missed comes after
      // that reply (replayed), and its position must not move past events it has not been given.
      if (subscription.state !== "subscribed") continue;
      const isNew = subscription._advance(frame);
      if (isNew && filterMatches(subscription.event, frame.type)) {
        subscription.emit("event", frame);
        subscription.emit(frame.type, frame);
      }
    }
  }

  *#onChannel(channel) {
    for (const subscription of this.subscriptions) if (subscription.channel === channel) yield subscription;
  }

  _remove(subscription) {
    this.subscriptions.delete(subscription);
    const stillWanted = [...this.subscriptions].some((s) => s.channel === subscription.channel && s.event === subscription.event);
    if (!stillWanted) this.#send({ type: "unsubscribe", channel: subscription.channel, event: subscription.event, ref: `u${this.nextRef++}` });
  }

  /** `state` events carry {state, previous, code?, reason?, reconnectInMs?, attempt?}; the event
   * named after the state carries the detail (for "connected": the server's `connected` frame). */
  #setState(state, detail = {}) {
    const previous = this.state;
    this.state = state;
    this.emit("state", state === "connected" ? { state, previous } : { state, previous, ...detail });
    this.emit(state, detail);
  }
}
