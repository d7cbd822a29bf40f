// Types of the RetroChat realtime client (retrochat.js). Frame shapes follow docs/realtime.md.

export declare const SUBPROTOCOL: "retrochat.v1";

export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed" | "failed";

/** `room:7`, `conversation:3`, `user:12`. */
export type ChannelName = `room:${number}` | `conversation:${number}` | `user:${number}` | (string & {});

export type EventCategory = "message" | "room" | "activity" | "conversation";
export type MessageEventType = "message:new" | "message:updated" | "message:deleted";
export type RoomEventType = "room:created" | "room:updated" | "room:deleted";
export type UserEventType = "user:online" | "user:offline" | "user:updated";
/** On your own `user:{id}` only, asked for by name (`"conversation"`): `*` leaves it out. */
export type ConversationEventType = "conversation:created";
export type EventType = MessageEventType | RoomEventType | UserEventType | ConversationEventType;
/** `*`, a category, or one exact event type. */
export type EventFilter = "*" | EventCategory | EventType;

export interface Position {
  offset: number;
  epoch: string;
}

export interface Message {
  id: string;
  room_id?: string;
  conversation_id?: string;
  user_id: string;
  content: string;
  created_at: string;
  updated_at: string;
  edited_at: string | null;
}

export interface DeletedMessage {
  id: string;
  room_id?: string;
  conversation_id?: string;
  user_id: string;
  deleted_at: string;
}

export interface Room {
  id: string;
  name: string;
  topic: string;
  is_private: boolean;
  created_by: string;
  created_at: string;
  updated_at: string;
  member_count: number;
  is_member?: boolean;
}

export interface Conversation {
  id: string;
  participants: [string, string];
  created_at: string;
}

export interface RoomDeleted {
  id: string;
  reason: "deleted" | "left" | "removed";
}

export interface UserPresence {
  user_id: string;
  status: "online" | "offline";
  timestamp: string;
}

export interface UserUpdated extends UserPresence {
  username: string;
  display_name: string;
  avatar_url: string;
  last_seen_at: string | null;
}

export interface EventDataMap {
  "message:new": Message;
  "message:updated": Message;
  "message:deleted": DeletedMessage;
  "room:created": Room;
  "room:updated": Room;
  "room:deleted": RoomDeleted;
  "conversation:created": Conversation;
  "user:online": UserPresence;
  "user:offline": UserPresence;
  "user:updated": UserUpdated;
}

/** An event frame. Presence events (`user:online`, `user:offline`) carry no offset or epoch. */
export type EventFrame<T extends EventType = EventType> = {
  [K in T]: {
    type: K;
    channel: string;
    offset?: number;
    epoch?: string;
    data: EventDataMap[K];
  };
}[T];

export interface ConnectedFrame {
  type: "connected";
  connection_id: string;
  user_id: string;
  heartbeat_interval: number;
  limits: { max_subscriptions: number; max_frame_bytes: number; rate_per_second: number; rate_burst: number };
}

export interface PongFrame {
  type: "pong";
  ref?: string | number;
  server_time: string;
}

/** Room activity: the members online now. User activity: that user's status. */
export type Presence = { online: string[] } | { status: "online" | "offline"; last_seen_at: string | null };

export interface SubscribedInfo extends Position {
  /** Present when the subscribe carried `since` (every resubscribe after a reconnect). */
  recovered?: boolean;
  presence?: Presence;
  /** True when this answers a subscribe with `since` (a resubscribe, or `since` given). */
  resubscribed: boolean;
}

export type ErrorCode =
  | "UNAUTHORIZED" | "FORBIDDEN_ORIGIN" | "INVALID_JSON" | "INVALID_FRAME" | "UNKNOWN_TYPE"
  | "INVALID_CHANNEL" | "INVALID_EVENT" | "CHANNEL_NOT_FOUND" | "FORBIDDEN" | "SUBSCRIPTION_LIMIT"
  | "RATE_LIMITED" | "MESSAGE_TOO_LARGE" | "SLOW_CONSUMER" | "CONNECTION_LIMIT" | "INTERNAL_ERROR"
  // raised by the client itself
  | "DISCONNECTED" | "TOKEN_UNAVAILABLE" | "CONNECT_FAILED";

export declare class RetroChatError extends Error {
  readonly name: "RetroChatError";
  /** The server's code, or one of the client's own (DISCONNECTED, TOKEN_UNAVAILABLE, CONNECT_FAILED). */
  readonly code: ErrorCode | (string & {});
  readonly ref?: string | number;
  /** The WebSocket close code, for errors that ended a connection. */
  readonly closeCode?: number;
}

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  code?: number | null;
  reason?: string;
  reconnectInMs?: number;
  attempt?: number;
}

declare class Emitter<Events> {
  /** Returns a function that removes the listener. */
  on<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): () => void;
  off<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): void;
  /** The next event of that name. */
  once<K extends keyof Events>(name: K): Promise<Events[K]>;
}

export type SubscriptionEvents = {
  subscribed: SubscribedInfo;
  /** Recovery failed (`recovered: false`): nothing was replayed. Refetch over REST, then continue
   * from this position (the events after it arrive live). */
  refetch: Position;
  /** Every event this subscription's filter matches, in order, each once. */
  event: EventFrame;
  /** The server refused the subscription (FORBIDDEN, CHANNEL_NOT_FOUND, INVALID_EVENT, …). */
  error: RetroChatError;
  /** The server ended it: the user lost access, or the channel was deleted. */
  unsubscribed: { reason: "access_revoked" | "channel_deleted" | (string & {}) };
} & { [K in EventType]: EventFrame<K> };

export declare class Subscription extends Emitter<SubscriptionEvents> {
  readonly client: RetroChatClient;
  readonly channel: string;
  readonly event: EventFilter;
  readonly state: SubscriptionState;
  /** The newest event of the channel this subscription has seen. */
  readonly position: Position | null;
  readonly presence: Presence | null;
  unsubscribe(): void;
}

export type ClientEvents = {
  state: StateChange;
  connecting: { attempt: number };
  /** The server's `connected` frame. */
  connected: ConnectedFrame;
  disconnected: { code: number | null; reason: string; reconnectInMs: number };
  closed: { code: number; reason: string; error?: RetroChatError };
  /** Connection-level errors: the server's error frames without a subscription, refused handshakes. */
  error: RetroChatError;
  /** A frame type this client version does not know. */
  frame: Record<string, unknown>;
};

export interface ClientOptions {
  /** `wss://host/v1/realtime` */
  url: string;
  /** An API key (servers, Node). Sent as the subprotocol `bearer.<key>`, never in the URL. */
  apiKey?: string;
  /** A page: a fresh connection token (`POST /v1/realtime/token`) for every (re)connect. */
  getToken?: () => Promise<string>;
  /** The WebSocket class; default `globalThis.WebSocket`. Node 20: `(await import("ws")).WebSocket`. */
  WebSocket?: unknown;
  /** First retry within this many ms (default 1000); the window doubles per attempt… */
  backoffBaseMs?: number;
  /** …up to this cap (default 30000). */
  backoffMaxMs?: number;
  /** Silence beyond `heartbeat_interval` + this margin (default 10000 ms) sends a ping… */
  heartbeatMarginMs?: number;
  /** …and no frame within this long (default 10000 ms) reconnects. */
  pingTimeoutMs?: number;
  /** Give up on a handshake that has not produced `connected` after this long (default 15000 ms). */
  connectTimeoutMs?: number;
  /** Connect right away (default true). */
  autoConnect?: boolean;
}

export declare class RetroChatClient extends Emitter<ClientEvents> {
  constructor(options: ClientOptions);
  readonly url: string;
  readonly state: ConnectionState;
  /** The `connected` frame of the current connection. */
  readonly info: ConnectedFrame | null;
  connect(): void;
  /** Close for good (no reconnect). */
  close(): void;
  subscribe(channel: ChannelName, event?: EventFilter, options?: { since?: Position }): Subscription;
  ping(): Promise<PongFrame>;
  listSubscriptions(): Promise<{ channel: string; events: EventFilter[] }[]>;
}

/** `message:new` → `message`, `user:online` → `activity`. */
export declare function categoryOf(eventType: EventType): EventCategory;
