// RetroChat web app: REST with the session (and CSRF token) for reads and writes, the realtime
// client (/static/retrochat.js) with a short-lived connection token for live events.
import { RetroChatClient } from "../retrochat.js";

const root = document.getElementById("app");
const me = root.dataset.userId;
const $ = (id) => document.getElementById(id);
const ui = {
  status: $("connection"),
  roomList: $("room-list"),
  roomsError: $("rooms-error"),
  createRoom: $("create-room"),
  heading: $("room-heading"),
  topic: $("room-topic"),
  join: $("join-room"),
  older: $("load-older"),
  messages: $("messages"),
  compose: $("compose"),
  composeText: $("compose-text"),
  roomError: $("room-error"),
  online: $("online-list"),
  presenceNote: $("presence-note"),
};

// --- REST ------------------------------------------------------------------------------------

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
  }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function showError(element, error) {
  element.textContent = error ? `${error.message}${error.code ? ` (${error.code})` : ""}` : "";
  element.hidden = !error;
}

const numericId = (id) => Number(String(id).split("_").pop());

// --- people ----------------------------------------------------------------------------------

const names = new Map(); // user id → display name
const nameWaiters = new Map();

function nameOf(userId) {
  return names.get(userId) ?? userId;
}

async function resolveNames(userIds) {
  const unknown = [...new Set(userIds)].filter((id) => !names.has(id) && !nameWaiters.has(id));
  if (!unknown.length) return;
  const request = api("GET", `/v1/users?ids=${unknown.slice(0, 100).join(",")}`);
  for (const id of unknown) nameWaiters.set(id, request);
  try {
    for (const user of (await request).results) names.set(user.id, user.display_name || user.username);
  } finally {
    for (const id of unknown) nameWaiters.delete(id);
  }
  for (const element of document.querySelectorAll("[data-user]")) element.textContent = nameOf(element.dataset.user);
}

// --- connection ------------------------------------------------------------------------------

const client = new RetroChatClient({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime`,
  getToken: async () => (await api("POST", "/v1/realtime/token")).token,
});

let everConnected = false;
client.on("state", ({ state }) => {
  const shown =
    state === "connected" ? ["connected", "Connected"]
    : state === "closed" ? ["closed", "Disconnected"]
    : everConnected ? ["reconnecting", "Reconnecting…"]
    : ["connecting", "Connecting…"];
  if (state === "connected") everConnected = true;
  ui.status.dataset.state = shown[0];
  ui.status.textContent = shown[1];
});
client.on("error", (error) => {
  if (error.code === "UNAUTHORIZED" || error.code === "TOKEN_UNAVAILABLE") {
    // Signed out elsewhere, or the session ended: the sign-in page says so.
    api("GET", "/v1/users/me").catch((failure) => failure.status === 401 || failure.status === 403 ? location.assign("/login/?next=/") : null);
  }
});

// --- rooms -----------------------------------------------------------------------------------

const rooms = new Map(); // room id → room
let current = null; // {room, messages: Subscription, activity: Subscription, older: url|null}

async function loadRooms() {
  try {
    const page = await api("GET", "/v1/rooms?limit=100");
    rooms.clear();
    for (const room of page.results) rooms.set(room.id, room);
    renderRooms();
    showError(ui.roomsError, null);
  } catch (error) {
    showError(ui.roomsError, error);
  }
}

function renderRooms() {
  ui.roomList.replaceChildren(
    ...[...rooms.values()].map((room) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `# ${room.name}`;
      button.dataset.room = room.id;
      if (current?.room.id === room.id) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => openRoom(room.id));
      item.append(button);
      if (!room.is_member) item.append(" ", Object.assign(document.createElement("span"), { className: "note", textContent: "(not joined)" }));
      return item;
    }),
  );
}

ui.createRoom.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = ui.createRoom.elements.name;
  try {
    const room = await api("POST", "/v1/rooms", { name: input.value });
    input.value = "";
    rooms.set(room.id, room);
    renderRooms();
    openRoom(room.id);
  } catch (error) {
    showError(ui.roomsError, error);
  }
});

ui.join.addEventListener("click", async () => {
  if (!current) return;
  try {
    await api("POST", `/v1/rooms/${current.room.id}/members`, {});
    current.room = await api("GET", `/v1/rooms/${current.room.id}`);
    rooms.set(current.room.id, current.room);
    renderRooms();
    renderRoomHeader();
    restartPresence(); // a member now: the room's presence includes us
  } catch (error) {
    showError(ui.roomError, error);
  }
});

function renderRoomHeader() {
  const { room } = current;
  ui.heading.textContent = `# ${room.name}`;
  ui.topic.textContent = room.topic;
  ui.join.hidden = room.is_member;
  ui.compose.hidden = !room.is_member;
}

function openRoom(roomId) {
  closeRoom();
  const room = rooms.get(roomId);
  const channel = `room:${numericId(roomId)}`;
  current = { room, channel, older: null, messages: client.subscribe(channel, "message"), activity: null };
  history.replaceState(null, "", `#${roomId}`);
  renderRooms();
  renderRoomHeader();
  showError(ui.roomError, null);
  ui.messages.replaceChildren();
  messageElements.clear();
  ui.older.hidden = true;

  const subscription = current.messages;
  subscription.on("subscribed", ({ resubscribed }) => {
    // First subscribe: the history up to now (events from here on arrive live; overlaps are
    // merged by message id). A resubscribe with `recovered: true` replays what was missed.
    if (!resubscribed) loadNewest(subscription);
  });
  subscription.on("refetch", () => catchUp(subscription));
  subscription.on("message:new", ({ data }) => upsertMessage(data));
  subscription.on("message:updated", ({ data }) => upsertMessage(data));
  subscription.on("message:deleted", ({ data }) => removeMessage(data.id));
  subscription.on("room:updated", ({ data }) => Object.assign(room, data) && renderRoomHeader());
  subscription.on("error", (error) => showError(ui.roomError, error));
  subscription.on("unsubscribed", ({ reason }) => showError(ui.roomError, { message: `You no longer have access to this room (${reason}).` }));
  restartPresence();
}

function closeRoom() {
  if (!current) return;
  current.messages.unsubscribe();
  current.activity?.unsubscribe();
  current = null;
  ui.online.replaceChildren();
}

const isCurrent = (subscription) => current?.messages === subscription;

async function loadNewest(subscription) {
  try {
    const page = await api("GET", `/v1/rooms/${current.room.id}/messages?limit=50`);
    if (!isCurrent(subscription)) return;
    for (const message of page.results) upsertMessage(message);
    setOlder(page.next);
  } catch (error) {
    showError(ui.roomError, error);
  }
}

/** After `recovered: false`: the messages after the newest we hold (oldest first), then the newest
 * page again, to pick up edits and deletions that were not replayed. */
async function catchUp(subscription) {
  try {
    const newest = Math.max(0, ...messageElements.keys());
    let url = newest ? `/v1/rooms/${current.room.id}/messages?after=msg_${newest}&limit=100` : null;
    while (url && isCurrent(subscription)) {
      const page = await api("GET", url);
      for (const message of page.results) upsertMessage(message);
      url = page.next;
    }
    const page = await api("GET", `/v1/rooms/${current.room.id}/messages?limit=50`);
    if (!isCurrent(subscription)) return;
    const seen = new Set(page.results.map((message) => numericId(message.id)));
    const oldest = Math.min(...seen);
    for (const id of [...messageElements.keys()]) if (id >= oldest && !seen.has(id)) removeMessage(`msg_${id}`);
    for (const message of page.results) upsertMessage(message);
  } catch (error) {
    showError(ui.roomError, error);
  }
}

function setOlder(url) {
  current.older = url;
  ui.older.hidden = !url;
}

ui.older.addEventListener("click", async () => {
  if (!current?.older) return;
  const subscription = current.messages;
  try {
    const page = await api("GET", current.older);
    if (!isCurrent(subscription)) return;
    for (const message of page.results) upsertMessage(message);
    setOlder(page.next);
  } catch (error) {
    showError(ui.roomError, error);
  }
});

// --- messages --------------------------------------------------------------------------------

const messageElements = new Map(); // numeric id → <li>

function upsertMessage(message) {
  const id = numericId(message.id);
  let item = messageElements.get(id);
  if (!item) {
    item = document.createElement("li");
    item.className = "message";
    item.dataset.id = message.id;
    messageElements.set(id, item);
    const next = [...messageElements.keys()].filter((other) => other > id).sort((a, b) => a - b)[0];
    ui.messages.insertBefore(item, next === undefined ? null : messageElements.get(next));
  }
  renderMessage(item, message);
  resolveNames([message.user_id]);
}

function renderMessage(item, message) {
  const author = Object.assign(document.createElement("span"), { className: "author", textContent: nameOf(message.user_id) });
  author.dataset.user = message.user_id;
  const time = Object.assign(document.createElement("time"), {
    dateTime: message.created_at,
    textContent: new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
  });
  const meta = Object.assign(document.createElement("p"), { className: "meta" });
  meta.append(author, " ", time);
  if (message.edited_at) meta.append(" ", Object.assign(document.createElement("span"), { className: "edited", textContent: "(edited)" }));
  const content = Object.assign(document.createElement("p"), { className: "content", textContent: message.content });
  item.replaceChildren(meta, content);
  if (message.user_id === me) item.append(ownActions(item, message));
}

function ownActions(item, message) {
  const actions = Object.assign(document.createElement("p"), { className: "actions" });
  const edit = Object.assign(document.createElement("button"), { type: "button", textContent: "Edit" });
  edit.setAttribute("aria-label", `Edit message: ${message.content.slice(0, 40)}`);
  edit.addEventListener("click", () => editMessage(item, message));
  const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete" });
  remove.setAttribute("aria-label", `Delete message: ${message.content.slice(0, 40)}`);
  remove.addEventListener("click", async () => {
    try {
      await api("DELETE", `/v1/messages/${message.id}`);
      removeMessage(message.id);
    } catch (error) {
      showError(ui.roomError, error);
    }
  });
  actions.append(edit, " ", remove);
  return actions;
}

function editMessage(item, message) {
  const form = document.createElement("form");
  form.className = "edit";
  const fieldId = `edit-${numericId(message.id)}`;
  const label = Object.assign(document.createElement("label"), { htmlFor: fieldId, textContent: "Edit message" });
  const field = Object.assign(document.createElement("textarea"), { id: fieldId, value: message.content, required: true, maxLength: 4000, rows: 2 });
  const save = Object.assign(document.createElement("button"), { type: "submit", textContent: "Save" });
  const cancel = Object.assign(document.createElement("button"), { type: "button", textContent: "Cancel" });
  cancel.addEventListener("click", () => renderMessage(item, message));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      upsertMessage(await api("PATCH", `/v1/messages/${message.id}`, { content: field.value }));
    } catch (error) {
      showError(ui.roomError, error);
    }
  });
  form.append(label, field, " ", save, " ", cancel);
  item.replaceChildren(form);
  field.focus();
}

function removeMessage(messageId) {
  const id = numericId(messageId);
  messageElements.get(id)?.remove();
  messageElements.delete(id);
}

ui.compose.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  try {
    const message = await api("POST", `/v1/rooms/${current.room.id}/messages`, { content: ui.composeText.value });
    ui.composeText.value = "";
    upsertMessage(message);
    showError(ui.roomError, null);
  } catch (error) {
    showError(ui.roomError, error);
  }
});
ui.composeText.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    ui.compose.requestSubmit();
  }
});

// --- who is online in the room -----------------------------------------------------------------

const online = new Set();

function restartPresence() {
  current.activity?.unsubscribe();
  online.clear();
  renderOnline();
  const subscription = client.subscribe(current.channel, "activity");
  current.activity = subscription;
  subscription.on("subscribed", ({ presence }) => {
    online.clear();
    for (const userId of presence?.online ?? []) online.add(userId);
    ui.presenceNote.hidden = true;
    renderOnline();
  });
  subscription.on("user:online", ({ data }) => online.add(data.user_id) && renderOnline());
  subscription.on("user:offline", ({ data }) => online.delete(data.user_id) && renderOnline());
  subscription.on("user:updated", ({ data }) => {
    names.set(data.user_id, data.display_name || data.username);
    renderOnline();
  });
  // A server without room presence answers INVALID_EVENT: the rest of the page works without it.
  subscription.on("error", () => {
    ui.presenceNote.hidden = false;
  });
}

function renderOnline() {
  resolveNames([...online]);
  ui.online.replaceChildren(
    ...[...online].sort().map((userId) => {
      const item = Object.assign(document.createElement("li"), { textContent: nameOf(userId) });
      item.dataset.user = userId;
      return item;
    }),
  );
}

// --- start -------------------------------------------------------------------------------------

// My own room list: rooms appear and go as I create, join or leave them anywhere.
const myRooms = client.subscribe(`user:${numericId(me)}`, "room");
myRooms.on("event", loadRooms);
myRooms.on("refetch", loadRooms);

await loadRooms();
const wanted = location.hash.slice(1);
const first = rooms.has(wanted) ? wanted : [...rooms.values()].find((room) => room.is_member)?.id ?? rooms.keys().next().value;
if (first) openRoom(first);
