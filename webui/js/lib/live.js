// @ts-check
/**
 * The one WebSocket to Studio. Dispatches each server event as a DOM event named after its
 * type (`comfy/connection`, `jobs/update`, ...) and `open` / `close` for the link itself.
 * Reconnects with capped, jittered backoff. After any reconnect, and on `events/reset`, it
 * dispatches `resync`: pages then refetch their REST snapshots (snapshot, then deltas).
 */
export class Live extends EventTarget {
  /** @param {string} [path] */
  constructor(path = '/ws') {
    super();
    this.path = path;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.connected = false;
    this.attempt = 0;
    this.everConnected = false;
    /** @type {number | undefined} */
    this.timer = undefined;
  }

  start() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}${this.path}`);
    this.socket = socket;
    socket.addEventListener('open', () => {
      const reconnect = this.everConnected;
      this.connected = true;
      this.everConnected = true;
      this.attempt = 0;
      this.dispatchEvent(new Event('open'));
      if (reconnect) this.dispatchEvent(new Event('resync'));
    });
    socket.addEventListener('message', (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      // A client that fell a little behind gets its backlog as one array of events.
      for (const event of Array.isArray(data) ? data : [data]) this.deliver(event);
    });
    socket.addEventListener('close', (closed) => {
      // Studio closes the socket itself when the sign-in ended (1008) or the role changed (4001).
      if (closed.code === 1008) {
        location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        return;
      }
      if (closed.code === 4001) {
        location.reload();
        return;
      }
      const wasConnected = this.connected;
      this.connected = false;
      this.socket = null;
      if (wasConnected) this.dispatchEvent(new Event('close'));
      this.schedule();
    });
  }

  /** @param {any} event */
  deliver(event) {
    if (!event || typeof event.type !== 'string') return;
    if (event.type === 'events/reset') {
      this.dispatchEvent(new Event('resync'));
      return;
    }
    const typed = /** @type {CustomEvent & {envelope?: any}} */ (new CustomEvent(event.type, { detail: event.payload }));
    typed.envelope = event; // its seq and server time (ts), for handlers that order news
    this.dispatchEvent(typed);
    this.dispatchEvent(new CustomEvent('any', { detail: event }));
  }

  schedule() {
    this.attempt += 1;
    const delay = Math.min(10000, 300 * 2 ** Math.min(this.attempt, 6)) * (0.5 + Math.random() / 2);
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.start(), delay);
  }

  /**
   * @param {string} type
   * @param {(payload: any, event?: {type: string, payload: any, seq?: number, ts?: number}) => void} handler
   *   gets the payload, then the whole event as Studio sent it
   * @returns {() => void} call to stop listening
   */
  on(type, handler) {
    /** @param {Event} event */
    const listener = (event) => handler(/** @type {CustomEvent} */ (event).detail,
      /** @type {CustomEvent & {envelope?: any}} */ (event).envelope);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }
}

export const live = new Live();
