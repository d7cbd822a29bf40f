// A TCP proxy between the client and the server that can go silent: `freeze()` stops forwarding on
// every open connection (a dead peer: no FIN, no RST, nothing), while new connections pass.
import { createServer, connect } from "node:net";

export class FreezingProxy {
  static async create(targetPort) {
    const proxy = new FreezingProxy(targetPort);
    await new Promise((done) => proxy.server.listen(0, "127.0.0.1", done));
    proxy.port = proxy.server.address().port;
    return proxy;
  }

  constructor(targetPort) {
    this.pairs = new Set();
    this.server = createServer((inbound) => {
      const outbound = connect(targetPort, "127.0.0.1");
      const pair = { inbound, outbound };
      this.pairs.add(pair);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      const drop = () => {
        this.pairs.delete(pair);
        inbound.destroy();
        outbound.destroy();
      };
      inbound.on("error", drop).on("close", drop);
      outbound.on("error", drop).on("close", drop);
    });
  }

  freeze() {
    for (const { inbound, outbound } of this.pairs) {
      inbound.unpipe(outbound);
      outbound.unpipe(inbound);
      inbound.pause();
      outbound.pause();
    }
    this.frozen = new Set(this.pairs);
    this.pairs.clear();
  }

  async close() {
    for (const { inbound, outbound } of [...this.pairs, ...(this.frozen ?? [])]) {
      inbound.destroy();
      outbound.destroy();
    }
    await new Promise((done) => this.server.close(done));
  }
}
