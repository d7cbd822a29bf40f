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
  conversationList: $("conversation-list"),
  conversationsError: $("conversations-error"),
  startConversation: $("start-conversation"),
  presence: $("presence"),
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
    // A validation error's message only says "see details": the details name what is wrong.
    const details = body?.code === "VALIDATION_ERROR" && body.details ? Object.values(body.details).flat().join(" ") : "";
    super(details || (body?.message ?? `HTTP ${status}`));
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

/** A user's name that resolveNames fills in once known. */
function nameTag(userId, className) {
  const tag = Object.assign(document.createElement("span"), { className, textContent: nameOf(userId) });
  tag.dataset.user = userId;
  return tag;
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

// --- lists of rooms and conversations ----------------------------------------------------------

const rooms = new Map(); // room id → room
const conversations = new Map(); // conversation id → conversation
// The room or conversation on screen: {room | conversation, channel, path (its REST address),
// messages: Subscription, activity: Subscription (rooms only), older: url|null}
let current = null;

/** One page of a list (the first 100: enough for a person's rooms or conversations) into `map`. */
async function loadInto(map, path, render, errorElement) {
  try {
    const page = await api("GET", path);
    map.clear();
    for (const item of page.results) map.set(item.id, item);
    render();
    showError(errorElement, null);
  } catch (error) {
    showError(errorElement, error);
  }
}

const loadRooms = () => loadInto(rooms, "/v1/rooms?limit=100", renderRooms, ui.roomsError);
const loadConversations = () => loadInto(conversations, "/v1/conversations?limit=100", renderConversations, ui.conversationsError);

/** A list item whose button opens a room or conversation; `label`: the button's strings and nodes. */
function openerItem(id, label, open) {
  const item = document.createElement("li");
  const button = Object.assign(document.createElement("button"), { type: "button" });
  button.append(...label);
  button.dataset.opens = id;
  if ((current?.room ?? current?.conversation)?.id === id) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => open(id));
  item.append(button);
  return item;
}

function renderRooms() {
  ui.roomList.replaceChildren(
    ...[...rooms.values()].map((room) => {
      const item = openerItem(room.id, [`# ${room.name}`], openRoom);
      if (!room.is_member) item.append(" ", Object.assign(document.createElement("span"), { className: "note", textContent: "(not joined)" }));
      return item;
    }),
  );
}

// A conversation has two participants; one with myself is not allowed, but show it sanely anyway.
const otherParticipant = (conversation) => conversation.participants.find((id) => id !== me) ?? me;

/** "@ Name": the other participant, named once resolveNames knows them. */
const conversationLabel = (conversation) => ["@ ", nameTag(otherParticipant(conversation), "person")];

function renderConversations() {
  resolveNames([...conversations.values()].map(otherParticipant));
  if (!conversations.size) {
    const empty = Object.assign(document.createElement("li"), { className: "note", textContent: "No conversations yet." });
    ui.conversationList.replaceChildren(empty);
    return;
  }
  ui.conversationList.replaceChildren(
    ...[...conversations.values()].map((conversation) => openerItem(conversation.id, conversationLabel(conversation), openConversation)),
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
  if (!current?.room) return;
  try {
    await api("POST", `${current.path}/members`, {});
    current.room = await api("GET", current.path);
    rooms.set(current.room.id, current.room);
    renderRooms();
    renderHeader();
    restartPresence(); // a member now: the room's presence includes us
  } catch (error) {
    showError(ui.roomError, error);
  }
});

// --- conversations -----------------------------------------------------------------------------


ui.startConversation.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = ui.startConversation.elements.user;
  try {
    const userId = await userIdFor(input.value.trim().replace(/^@/, "")); // "@bob" works too
    if (userId.replace(/^user_/, "") === me.replace(/^user_/, "")) throw new Error("That is you: a conversation needs someone else.");
    // Get or create: with someone I already talk to, the same conversation comes back (200).
    const conversation = await api("POST", "/v1/conversations", { user_id: userId });
    input.value = "";
    conversations.set(conversation.id, conversation);
    renderConversations();
    showError(ui.conversationsError, null);
    openConversation(conversation.id);
  } catch (error) {
    showError(ui.conversationsError, error);
  }
});

/** A user id as typed (`user_12`, `12`), or the user whose username is `text` (exactly, else
 * ignoring case): the API searches usernames and display names by substring, so it is picked here. */
async function userIdFor(text) {
  if (/^(user_)?\d+$/.test(text)) return text;
  const page = await api("GET", `/v1/users?search=${encodeURIComponent(text)}&limit=100`);
  const user =
    page.results.find((candidate) => candidate.username === text) ??
    page.results.find((candidate) => candidate.username.toLowerCase() === text.toLowerCase());
  if (!user) throw new Error(`No user named "${text}" (a username, or an id such as user_12).`);
  names.set(user.id, user.display_name || user.username);
  return user.id;
}

// --- the open room or conversation -------------------------------------------------------------

function renderHeader() {
  const { room, conversation } = current;
  ui.presence.hidden = !room; // who is online is a room's (a conversation has one other person)
  if (conversation) {
    ui.heading.replaceChildren(...conversationLabel(conversation));
    ui.topic.textContent = "Direct conversation";
    ui.join.hidden = true;
    ui.compose.hidden = false;
    return;
  }
  ui.heading.textContent = `# ${room.name}`;
  ui.topic.textContent = room.topic;
  ui.join.hidden = room.is_member;
  ui.compose.hidden = !room.is_member;
}

function openRoom(roomId) {
  const room = rooms.get(roomId);
  const subscription = openChat({ room, channel: `room:${numericId(roomId)}`, path: `/v1/rooms/${roomId}` });
  subscription.on("room:updated", ({ data }) => Object.assign(room, data) && renderHeader());
  restartPresence();
}

function openConversation(conversationId) {
  const conversation = conversations.get(conversationId);
  openChat({ conversation, channel: `conversation:${numericId(conversationId)}`, path: `/v1/conversations/${conversationId}` });
}

/** Shows `chat` ({room} or {conversation}, channel, path): its history, then its live messages. */
function openChat(chat) {
  closeChat();
  const kind = chat.room ? "room" : "conversation";
  current = { ...chat, older: null, messages: client.subscribe(chat.channel, "message"), activity: null };
  history.replaceState(null, "", `#${(chat.room ?? chat.conversation).id}`);
  renderRooms();
  renderConversations();
  renderHeader();
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
  subscription.on("error", (error) => showError(ui.roomError, error));
  subscription.on("unsubscribed", ({ reason }) => showError(ui.roomError, { message: `You no longer have access to this ${kind} (${reason}).` }));
  return subscription;
}

function closeChat() {
  if (!current) return;
  current.messages.unsubscribe();
  current.activity?.unsubscribe();
  current = null;
  ui.online.replaceChildren();
}

const isCurrent = (subscription) => current?.messages === subscription;

async function loadNewest(subscription) {
  try {
    const page = await api("GET", `${current.path}/messages?limit=50`);
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
    let url = newest ? `${current.path}/messages?after=msg_${newest}&limit=100` : null;
    while (url && isCurrent(subscription)) {
      const page = await api("GET", url);
      for (const message of page.results) upsertMessage(message);
      url = page.next;
    }
    const page = await api("GET", `${current.path}/messages?limit=50`);
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
  const author = nameTag(message.user_id, "author");
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
    const message = await api("POST", `${current.path}/messages`, { content: ui.composeText.value });
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

// My conversations: one appears as soon as anyone starts it with me (asked for by name: `*` leaves
// the conversation feed out). If missed events cannot be replayed, the list is loaded again.
const myConversations = client.subscribe(`user:${numericId(me)}`, "conversation");
myConversations.on("conversation:created", ({ data }) => {
  conversations.set(data.id, data);
  renderConversations();
});
myConversations.on("refetch", loadConversations);

await Promise.all([loadRooms(), loadConversations()]);
// The one the address names, else a room I am in, else any room, else a conversation.
const wanted = location.hash.slice(1);
const firstRoom = rooms.has(wanted) ? wanted : [...rooms.values()].find((room) => room.is_member)?.id ?? rooms.keys().next().value;
if (conversations.has(wanted)) openConversation(wanted);
else if (firstRoom) openRoom(firstRoom);
else if (conversations.size) openConversation(conversations.keys().next().value);
