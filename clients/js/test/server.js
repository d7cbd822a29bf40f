// A real RetroChat server for the client's tests: its own migrated SQLite database in a temporary
// folder, users with API keys, and `python -m retrochat.serve` on a free port that can be stopped
// and started again (same port, same database) to test reconnects. Always call `close()`.
// Each database is a copy of one migrated once, users and keys made, by a single Python process
// (`manage.py shell`) per set of users: each process costs a second or two of CPU to start Django.
import { spawn, execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, openSync, closeSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, "../../..");
const PYTHON = process.env.RETROCHAT_PYTHON ?? join(ROOT, ".venv/bin/python");
const START_TIMEOUT_MS = 30000;

// Servers still running when this process ends (a test runner's timeout, Ctrl-C) are killed too,
// and the template databases are removed.
const running = new Set();
const templateFolders = new Set();
const killRunning = () => {
  for (const child of running) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
};
process.once("exit", () => {
  killRunning();
  for (const folder of templateFolders) rmSync(folder, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    killRunning();
    process.exit(130);
  });
}

async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/** Poll `check` until it returns a truthy value (the value), or fail after `timeoutMs`. */
export async function waitFor(check, { timeoutMs = 10000, what = "a condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

/** The environment of a server's Python processes: its own SQLite file, no Redis, the project's settings. */
function serverEnv(databasePath, env = {}) {
  const result = { ...process.env, DATABASE_URL: `sqlite:///${databasePath}`, RETROCHAT_WRITE_THROTTLE: "off", ...env };
  delete result.DJANGO_SETTINGS_MODULE;
  delete result.REDIS_URL; // the embedded default: its own database, its own process
  return result;
}

const templates = new Map(); // JSON of the usernames → Promise of { path, keys }

/** A migrated database with `usernames`, each with an API key (`createapikey USERNAME --create-user`): made once. */
function template(usernames) {
  const id = JSON.stringify(usernames);
  if (!templates.has(id)) {
    const folder = mkdtempSync(join(tmpdir(), "retrochat-js-template-"));
    templateFolders.add(folder);
    const path = join(folder, "db.sqlite3");
    const code = [
      "import io, json",
      "from django.core.management import call_command",
      "from django.db import connection",
      'call_command("migrate", interactive=False, verbosity=0)',
      "keys = {}",
      `for name in ${id}:`, // a JSON list of strings is a Python list
      "    out = io.StringIO()",
      '    call_command("createapikey", name, create_user=True, stdout=out, stderr=io.StringIO())',
      "    keys[name] = out.getvalue().strip().splitlines()[-1].strip()",
      'connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")', // all of it in the file to copy
      "connection.close()",
      "print(json.dumps(keys))",
    ].join("\n");
    const made = run(PYTHON, ["manage.py", "shell", "-c", code], { cwd: ROOT, env: serverEnv(path) });
    templates.set(id, made.then(({ stdout }) => ({ path, keys: JSON.parse(stdout.trim().split("\n").at(-1)) })));
  }
  return templates.get(id);
}

export class TestServer {
  /** A started server whose database has the users `usernames`, each with an API key: `server.keys[username]`. */
  static async create(env = {}, usernames = []) {
    const server = new TestServer(env);
    try {
      const { path, keys } = await template(usernames);
      copyFileSync(path, server.databasePath);
      server.keys = keys;
      server.port = await freePort();
      await server.start();
    } catch (error) {
      await server.close(); // no `after` hook can: the caller never gets the server
      throw error;
    }
    return server;
  }

  constructor(env) {
    this.folder = mkdtempSync(join(tmpdir(), "retrochat-js-"));
    this.logPath = join(this.folder, "server.log");
    this.databasePath = join(this.folder, "db.sqlite3");
    this.env = serverEnv(this.databasePath, { SECRET_KEY: randomBytes(32).toString("hex"), ...env });
    this.process = null;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/v1/realtime`;
  }

  async start() {
    const log = openSync(this.logPath, "a");
    this.process = spawn(PYTHON, ["-m", "retrochat.serve"], {
      cwd: ROOT,
      env: { ...this.env, HOST: "127.0.0.1", PORT: String(this.port) },
      stdio: ["ignore", log, log],
      detached: true, // its own process group, so that stop() ends it and anything it started
    });
    closeSync(log);
    const child = this.process;
    running.add(child);
    const exited = new Promise((done) => child.once("exit", done));
    exited.then(() => running.delete(child));
    child.exited = exited;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${this.log()}`);
        try {
          return (await fetch(`${this.httpUrl}/v1/health`)).status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: START_TIMEOUT_MS, what: "the server to answer /v1/health" },
    );
  }

  /** SIGTERM (a graceful stop: sockets close with 1012), and wait for the process to end. */
  async stop() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    process.kill(-child.pid, "SIGTERM");
    const timer = setTimeout(() => process.kill(-child.pid, "SIGKILL"), 10000);
    await child.exited;
    clearTimeout(timer);
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  async close() {
    await this.stop();
    rmSync(this.folder, { recursive: true, force: true });
  }

  log() {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  /** A REST call as a client makes it: `{status, body}`. */
  async request(method, path, key, body) {
    const response = await fetch(this.httpUrl + path, {
      method,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }
}
