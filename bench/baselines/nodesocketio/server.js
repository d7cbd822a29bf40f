// Peer baseline "nodesocketio": Node socket.io with the Redis adapter, written as socket.io's docs
// show it (rooms, `io.to(room).emit`, `@socket.io/redis-adapter` with the `redis` client).
//
//   REDIS_URL=redis://127.0.0.1:6379/12 node server.js --port 9301
//
// socket.io: the client emits "subscribe" with a channel name and gets an acknowledgement
// {"type":"subscribed","channel":C}; events arrive as the "message:new" event with
// {"type":"message:new","channel":C,"data":{"content":…}}. HTTP: `POST /publish/<channel>` with
// {"content": …} emits one event to the room (bench/baselines/bare/server.py has the same endpoint).
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379/12";

async function main() {
  const httpServer = http.createServer((req, res) => {
    if (req.method !== "POST" || !req.url.startsWith("/publish/")) {
      res.writeHead(404).end();
      return;
    }
    const channel = decodeURIComponent(req.url.slice("/publish/".length));
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const data = JSON.parse(Buffer.concat(chunks).toString());
      io.to(channel).emit("message:new", { type: "message:new", channel, data });
      res.writeHead(204).end();
    });
  });
  const io = new Server(httpServer, { perMessageDeflate: false });
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  io.adapter(createAdapter(pubClient, subClient, { key: "bench-nodesocketio" }));

  io.on("connection", (socket) => {
    socket.on("subscribe", (channel, ack) => {
      socket.join(channel);
      if (typeof ack === "function") ack({ type: "subscribed", channel });
    });
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pubClient.quit(), subClient.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  httpServer.listen(port, "127.0.0.1", () => console.log("ready"));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
