// @ts-check
/**
 * The Activity panel: what happened in Studio, newest first, as a person would retell it. Runs of
 * the same kind of news become one line ("3 jobs completed", "ComfyUI reconnected 4 times"), each
 * line links to what it is about, and nothing a person reads carries an exception's class name
 * (ComfyUI's and Studio's own words stay on the pages those links open).
 *
 * `grouped(events)` is the pure part; `ActivityPanel` keeps the list, the drawer and the unread
 * count (news that arrived while the panel was out of sight).
 */
import { api } from './api.js';
import { h, replace } from './dom.js';
import { formatTime } from './format.js';

/** @typedef {{type: string, payload?: any, created_at?: string, ts?: number}} Activity */
/** @typedef {{key: string, events: Activity[], text: string, href: string, when: number, tone: string}} Group */

export const SHOWN_TYPES = ['comfy/connection', 'system/started', 'system/notice', 'settings/changed', 'jobs/finished',
  'downloads/finished'];
const KEPT = 300;
const GROUPS_SHOWN = 40;

/** @param {Activity} event */
const whenOf = (event) => (event.ts ?? (Date.parse(event.created_at || '') / 1000)) || Date.now() / 1000;

/** @param {number} n @param {string} one @param {string} [many] */
const count = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** @param {string} status */
const finishedWord = (status) => ({ interrupted: 'stopped', cancelled: 'cancelled' }[status] || status);

/** Which events fold into one line: same key, next to each other in time. @param {Activity} event */
function keyOf(event) {
  const p = event.payload || {};
  switch (event.type) {
    case 'jobs/finished': return p.status === 'failed' ? `job-failed:${p.id}` : `jobs:${p.status}`;
    case 'comfy/connection': return 'comfy';
    case 'auth/login': return `login:${p.username}`;
    case 'auth/login_failed': return `login-failed:${p.username}`;
    case 'downloads/finished': return `downloads:${p.status}`;
    case 'settings/changed': return `settings:${p.actor}`;
    default: return `${event.type}:${JSON.stringify(p).slice(0, 200)}`;
  }
}

/** One line for a run of events with the same key (newest first). @param {Activity[]} events @returns {Omit<Group, 'key' | 'events' | 'when'>} */
function describe(events) {
  const [event] = events;
  const n = events.length;
  const p = event.payload || {};
  switch (event.type) {
    case 'jobs/finished': {
      if (n > 1) return { text: `${count(n, 'job')} ${finishedWord(p.status)}`, href: '/history', tone: p.status };
      return { text: `${p.workflow || 'A job'} ${finishedWord(p.status)}`, href: `/job/${encodeURIComponent(p.id || '')}`,
        tone: p.status };
    }
    case 'comfy/connection': {
      const flaps = events.filter((e) => e.payload?.connected).length;
      const now = p.connected ? 'ComfyUI connected' : 'ComfyUI stopped answering';
      return { text: n > 1 && flaps > 1 ? `${now} (reconnected ${count(flaps, 'time')})` : now, href: '/system',
        tone: p.connected ? 'ok' : 'bad' };
    }
    case 'system/started': return { text: `Studio ${p.version || ''} started`, href: '/system', tone: '' };
    case 'system/notice': return { text: p.message || 'Notice', href: '/system', tone: 'warn' };
    case 'auth/login': return { text: `${p.username} signed in${n > 1 ? ` ${count(n, 'time')}` : ''}`, href: '/users', tone: '' };
    case 'auth/login_failed':
      return { text: `${count(n, 'failed sign-in')} as ${p.username}${p.reason === 'rate_limited' ? ' (rate limited)' : ''}`,
        href: '/users', tone: 'bad' };
    case 'auth/logout': return { text: `${p.username} signed out`, href: '/users', tone: '' };
    case 'auth/token_created': return { text: `${p.username} created API token “${p.name}”`, href: '/account', tone: '' };
    case 'auth/token_revoked': return { text: `${p.username} revoked API token “${p.name}”`, href: '/account', tone: '' };
    case 'auth/user_changed':
      return { text: `User ${p.username || p.user_id}: ${String(p.action || 'changed').replace('_', ' ')}`, href: '/users', tone: '' };
    case 'downloads/finished':
      return { text: n > 1 ? `${count(n, 'download')} ${p.status}` : `Download ${p.name}: ${p.status}`, href: '/downloads',
        tone: p.status === 'completed' ? 'ok' : 'bad' };
    case 'settings/changed':
      return { text: `${p.actor} changed settings${n > 1 ? ` ${count(n, 'time')}` : `: ${(p.changed || []).join(', ')}`}`,
        href: '/settings', tone: '' };
    default: return { text: event.type, href: '/system', tone: '' };
  }
}

/** Folds runs of like events (newest first) into lines. @param {Activity[]} events @returns {Group[]} */
export function grouped(events) {
  /** @type {Group[]} */
  const groups = [];
  for (const event of events) {
    const key = keyOf(event);
    const last = groups[groups.length - 1];
    if (last && last.key === key) last.events.push(event);
    else groups.push({ key, events: [event], text: '', href: '', when: whenOf(event), tone: '' });
  }
  return groups.map((group) => ({ ...group, ...describe(group.events) }));
}

/** The panel beside (or, on a narrow screen, over) the page. */
export class ActivityPanel {
  /** @param {{panel: HTMLElement, list: HTMLElement, button: HTMLElement, unread: HTMLElement, close: HTMLElement | null}} parts */
  constructor(parts) {
    this.parts = parts;
    /** @type {Activity[]} newest first */
    this.events = [];
    this.unread = 0;
    this.narrow = window.matchMedia('(max-width: 1100px)');
    // Wide screens show the panel unless its owner put it away; narrow ones keep it closed.
    this.collapsed = localStorage.getItem('studio-activity') === 'collapsed';
    this.open = false;
    parts.button.addEventListener('click', () => this.toggle());
    parts.close?.addEventListener('click', () => this.toggle(false));
    this.narrow.addEventListener('change', () => this.apply());
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && this.open && this.narrow.matches) this.toggle(false); });
    parts.list.addEventListener('click', (e) => {
      if (/** @type {HTMLElement} */ (e.target).closest('a') && this.narrow.matches) this.toggle(false);
    });
    this.apply();
  }

  visible() { return this.narrow.matches ? this.open : !this.collapsed; }

  /** @param {boolean} [show] */
  toggle(show) {
    const next = show ?? !this.visible();
    if (this.narrow.matches) this.open = next;
    else {
      this.collapsed = !next;
      localStorage.setItem('studio-activity', this.collapsed ? 'collapsed' : 'shown');
    }
    this.apply();
  }

  apply() {
    const shown = this.visible();
    document.body.classList.toggle('activity-collapsed', !this.narrow.matches && this.collapsed);
    document.body.classList.toggle('activity-open', this.narrow.matches && this.open);
    this.parts.button.setAttribute('aria-expanded', String(shown));
    if (shown) this.unread = 0;
    this.showUnread();
  }

  showUnread() {
    const { unread, button } = this.parts;
    unread.textContent = this.unread ? String(this.unread > 99 ? '99+' : this.unread) : '';
    unread.hidden = !this.unread;
    button.setAttribute('aria-label', this.unread ? `Activity, ${count(this.unread, 'new item')}` : 'Activity');
  }

  /** @param {Activity} event news that just happened */
  add(event) {
    this.events.unshift(event);
    this.events.length = Math.min(this.events.length, KEPT);
    if (!this.visible()) { this.unread += 1; this.showUnread(); }
    this.render();
  }

  async load() {
    try {
      const data = await api.get('/api/events?limit=100');
      this.events = data.items.filter((/** @type {Activity} */ e) => SHOWN_TYPES.includes(e.type) || e.type.startsWith('auth/'));
      this.render();
    } catch {
      // The panel is secondary: the page works without it.
    }
  }

  render() {
    const groups = grouped(this.events).slice(0, GROUPS_SHOWN);
    replace(this.parts.list, groups.length ? groups.map((g) => h('li', { class: `activity-item${g.tone ? ` tone-${g.tone}` : ''}`,
      'data-count': g.events.length },
    h('time', { datetime: new Date(g.when * 1000).toISOString() }, formatTime(g.when)),
    h('a', { href: g.href, 'data-link': true }, g.text)))
      : h('li', { class: 'muted empty-line' }, 'Nothing has happened yet: jobs, downloads and sign-ins will show here.'));
  }
}
