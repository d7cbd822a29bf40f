// The JavaScript client against a real server (test/server.js): states, subscriptions, errors,
// tokens, recovery across a server restart, and dead-peer detection.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";

import { RetroChatClient } from "../retrochat.js";
import { FreezingProxy } from "./proxy.js";
import { TestServer, waitFor } from "./server.js";

/** A client whose states and errors are recorded, closed by `after` whatever happens. */
function recordingClient(t, options) {
  const client = new RetroChatClient({ WebSocket, ...options });
  const states = [];
  const errors = [];
  client.on("state", ({ state }) => states.push(state));
  client.on("error", (error) => errors.push(error));
  t.after(() => client.close());
  return { client, states, errors };
}

/** A public room created by `ownerKey` and joined by every one of `memberKeys`: its numeric id. */
async function makeRoom(server, ownerKey, name, memberKeys) {
  const room = await server.request("POST", "/v1/rooms", ownerKey, { name });
  assert.equal(room.status, 201);
  const id = room.body.id.replace("room_", "");
  for (const key of memberKeys) assert.equal((await server.request("POST", `/v1/rooms/${id}/members`, key, {})).status, 201);
  return id;
}

function collect(subscription) {
  const frames = [];
  subscription.on("event", (frame) => frames.push(frame));
  return frames;
}

describe("against one server", { timeout: 60000 }, () => {
  let server, aliceKey, bobKey, roomId;

  before(async () => {
    server = await TestServer.create({}, ["alice", "bob"]);
    ({ alice: aliceKey, bob: bobKey } = server.keys);
    roomId = await makeRoom(server, aliceKey, "lobby", [bobKey]);
  });
  after(() => server?.close());

  test("connects with an API key and reports connecting, then connected with the server's frame", async (t) => {
    const { client, states } = recordingClient(t, { url: server.wsUrl, apiKey: aliceKey });
    const hello = await client.once("connected");

    assert.deepEqual(states, ["connecting", "connected"]);
    assert.equal(hello.type, "connected");
    assert.match(hello.user_id, /^user_\d+$/);
    assert.deepEqual(Object.keys(hello.limits).sort(), ["max_frame_bytes", "max_subscriptions", "rate_burst", "rate_per_second"]);
    client.close();
    assert.deepEqual(states, ["connecting", "connected", "closed"]);
  });

  test("delivers a subscription's events with their type, offset and epoch, after its position", async (t) => {
    const { client } = recordingClient(t, { url: server.wsUrl, apiKey: aliceKey });
    const subscription = client.subscribe(`room:${roomId}`, "message");
    const subscribed = await subscription.once("subscribed");
    const newMessages = [];
    subscription.on("message:new", (frame) => newMessages.push(frame));

    const arriving = subscription.once("event"); // before posting: the event may beat the HTTP answer
    const posted = await server.request("POST", `/v1/rooms/${roomId}/messages`, bobKey, { content: "hello alice" });
    const frame = await arriving;

    assert.equal(posted.status, 201);
    assert.deepEqual(frame, {
      type: "message:new",
      channel: `room:${roomId}`,
      offset: subscribed.offset + 1,
      epoch: subscribed.epoch,
      data: posted.body,
    });
    assert.deepEqual(newMessages, [frame]);
    assert.deepEqual(subscription.position, { offset: subscribed.offset + 1, epoch: subscribed.epoch });
  });

  test("a user's own conversation feed announces a conversation someone else starts, by category", async (t) => {
    const { client } = recordingClient(t, { url: server.wsUrl, apiKey: bobKey });
    const hello = await client.once("connected");
    const feed = client.subscribe(`user:${hello.user_id.replace("user_", "")}`, "conversation");
    const subscribed = await feed.once("subscribed");

    const arriving = feed.once("conversation:created");
    const started = await server.request("POST", "/v1/conversations", aliceKey, { user_id: hello.user_id });
    const frame = await arriving;

    assert.equal(started.status, 201);
    assert.deepEqual(frame, {
      type: "conversation:created",
      channel: `user:${hello.user_id.replace("user_", "")}`,
      offset: subscribed.offset + 1,
      epoch: subscribed.epoch,
      data: started.body,
    });
  });

  test("reports a refused subscription with the server's code", async (t) => {
    const { client } = recordingClient(t, { url: server.wsUrl, apiKey: aliceKey });
    const subscription = client.subscribe("room:999999", "message");

    const error = await subscription.once("error");

    assert.equal(error.code, "CHANNEL_NOT_FOUND");
    assert.equal(subscription.state, "failed");
  });

  test("unsubscribe removes the filter on the server, keeping another subscription's", async (t) => {
    const { client } = recordingClient(t, { url: server.wsUrl, apiKey: aliceKey });
    const everything = client.subscribe(`room:${roomId}`, "message");
    const onlyNew = client.subscribe(`room:${roomId}`, "message:new");
    await Promise.all([everything.once("subscribed"), onlyNew.once("subscribed")]);

    everything.unsubscribe();

    assert.deepEqual(await client.listSubscriptions(), [{ channel: `room:${roomId}`, events: ["message:new"] }]);
    assert.equal(everything.state, "unsubscribed");
  });

  test("stops on 4001 with the server's UNAUTHORIZED and never retries", async (t) => {
    const { client, states, errors } = recordingClient(t, { url: server.wsUrl, apiKey: "rc_" + "x".repeat(43) });

    const closed = await client.once("closed");

    assert.deepEqual(states, ["connecting", "closed"]);
    assert.equal(closed.code, 4001);
    assert.deepEqual(errors.map((error) => error.code), ["UNAUTHORIZED"]);
    assert.equal(client.timers.retry, null);
  });

  test("a token callback is asked for a token on connect, and the socket authenticates with it", async (t) => {
    let calls = 0;
    const getToken = async () => {
      calls++;
      const { status, body } = await server.request("POST", "/v1/realtime/token", aliceKey);
      assert.equal(status, 201);
      return body.token;
    };
    const { client } = recordingClient(t, { url: server.wsUrl, getToken });

    const hello = await client.once("connected");

    assert.equal(calls, 1);
    assert.match(hello.user_id, /^user_\d+$/);
  });
});

describe("across a server restart", { timeout: 90000 }, () => {
  let server, aliceKey, bobKey, roomId;

  before(async () => {
    server = await TestServer.create({}, ["alice", "bob"]);
    ({ alice: aliceKey, bob: bobKey } = server.keys);
    roomId = await makeRoom(server, aliceKey, "restarts", [bobKey]);
  });
  after(() => server?.close());

  test("every event arrives exactly once, in order, while a publisher posts through the restart", async (t) => {
    let tokens = 0;
    const getToken = async () => {
      tokens++;
      return (await server.request("POST", "/v1/realtime/token", aliceKey)).body.token;
    };
    const { client, states } = recordingClient(t, { url: server.wsUrl, getToken, backoffBaseMs: 200 });
    const subscription = client.subscribe(`room:${roomId}`, "message");
    const frames = collect(subscription);
    const refetches = [];
    subscription.on("refetch", (position) => refetches.push(position));
    const first = await subscription.once("subscribed");

    const total = 30;
    let posted = 0;
    const publish = async () => {
      while (posted < total) {
        try {
          const { status } = await server.request("POST", `/v1/rooms/${roomId}/messages`, bobKey, { content: `m${posted}` });
          if (status === 201) posted++;
        } catch {
          await new Promise((done) => setTimeout(done, 50)); // the server is down: retry
        }
      }
    };
    const publishing = publish();
    await waitFor(() => posted >= 10, { what: "ten messages before the restart" });
    await server.restart();
    await publishing;
    await waitFor(() => frames.length >= total, { timeoutMs: 20000, what: `${total} events (have ${frames.length})` });

    const offsets = frames.map((frame) => frame.offset);
    assert.deepEqual(offsets, Array.from({ length: total }, (_, i) => first.offset + 1 + i));
    assert.deepEqual(frames.map((frame) => frame.data.content), Array.from({ length: total }, (_, i) => `m${i}`));
    assert.deepEqual(refetches, []);
    assert.ok(states.includes("disconnected"), `states: ${states}`);
    // The publisher may finish on the old server while it shuts down (it still answers then), so
    // every event can be in before the client has reconnected: connected again, in the end.
    await waitFor(() => states.at(-1) === "connected", { what: "connected again" });
    assert.ok(!states.includes("closed"), `states: ${states}`);
    assert.ok(tokens >= 2, "a fresh token for the reconnect");
  });
});

describe("a server that stops answering", { timeout: 60000 }, () => {
  let server, proxy, aliceKey, bobKey, roomId;

  before(async () => {
    server = await TestServer.create({ RETROCHAT_HEARTBEAT_INTERVAL: "1" }, ["alice", "bob"]);
    proxy = await FreezingProxy.create(server.port);
    ({ alice: aliceKey, bob: bobKey } = server.keys);
    roomId = await makeRoom(server, aliceKey, "silence", [bobKey]);
  });
  after(async () => {
    await proxy?.close();
    await server?.close();
  });

  test("is detected by a ping without answer; the client reconnects and recovers what it missed", async (t) => {
    const url = `ws://127.0.0.1:${proxy.port}/v1/realtime`;
    const { client } = recordingClient(t, { url, apiKey: aliceKey, heartbeatMarginMs: 300, pingTimeoutMs: 500, backoffBaseMs: 100 });
    const subscription = client.subscribe(`room:${roomId}`, "message");
    const frames = collect(subscription);
    await subscription.once("subscribed");
    const disconnected = client.once("disconnected");

    proxy.freeze();
    const missed = await server.request("POST", `/v1/rooms/${roomId}/messages`, bobKey, { content: "while silent" });
    const { reason } = await disconnected;
    await waitFor(() => frames.length === 1, { what: "the missed message" });

    assert.equal(reason, "no answer from the server");
    assert.deepEqual(frames.map((frame) => frame.data), [missed.body]);
    assert.equal(client.state, "connected");
  });
});
