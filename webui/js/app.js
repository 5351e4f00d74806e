// @ts-check
import { api, setCsrfToken } from './lib/api.js';
import { h, replace } from './lib/dom.js';
import { formatTime } from './lib/format.js';
import { live } from './lib/live.js';

/** Navigation for every page; `ready: false` pages come with later work. */
const PAGES = [
  { path: '/', title: 'Home', module: './pages/home.js', ready: true },
  { path: '/run', title: 'Run', module: './pages/run.js' },
  { path: '/queue', title: 'Queue', module: './pages/queue.js' },
  { path: '/history', title: 'History', module: './pages/history.js' },
  { path: '/workflows', title: 'Workflows', module: './pages/workflows.js' },
  { path: '/models', title: 'Models', module: './pages/models.js' },
  { path: '/loras', title: 'LoRAs', module: './pages/models.js' },
  { path: '/downloads', title: 'Downloads', module: './pages/downloads.js' },
  { path: '/presets', title: 'Presets' },
  { path: '/gallery', title: 'Gallery' },
  { path: '/civitai', title: 'CivitAI' },
  { path: '/llm', title: 'LLM' },
  { path: '/settings', title: 'Settings', module: './pages/settings.js', admin: true },
  { path: '/users', title: 'Users', module: './pages/users.js', admin: true },
  { path: '/account', title: 'Account', module: './pages/account.js' },
  { path: '/job', title: 'Job', module: './pages/job.js', hidden: true },
];

/** @type {{user: {id: number, username: string, role: string}, csrf_token: string} | null} */
export let me = null;

/** @type {(() => void) | null} */
let unmountPage = null;

function renderNav() {
  const nav = /** @type {HTMLElement} */ (document.getElementById('sidenav'));
  const visible = PAGES.filter((page) => !page.hidden && (!page.admin || me?.user.role === 'admin'));
  replace(nav, h('ul', null, visible.map((page) => h('li', null,
    h('a', { href: page.path, 'data-link': true, 'aria-current': page.path === location.pathname ? 'page' : null },
      page.title)))));
}

let routing = 0;

async function route() {
  const page = PAGES.find((p) => p.path === location.pathname) || PAGES[0];
  const ticket = ++routing;
  renderNav();
  document.title = `${page.title} · ComfyUI Studio`;
  const module = page.module ? await import(page.module) : await import('./pages/upcoming.js');
  // A later navigation may have started while this page's module loaded: it wins.
  if (ticket !== routing) return;
  if (unmountPage) unmountPage();
  unmountPage = null;
  const main = /** @type {HTMLElement} */ (document.getElementById('page'));
  unmountPage = module.mount(main, { title: page.title, me }) || null;
  document.body.classList.remove('nav-open');
}

/** @param {string} state @param {string} label @param {string} id */
function setIndicator(id, state, label) {
  const el = document.getElementById(id);
  if (!el) return;
  el.dataset.state = state;
  const text = el.querySelector('.label');
  if (text) text.textContent = label;
}

/** @param {boolean} connected */
export function showComfyState(connected) {
  setIndicator('comfy-indicator', connected ? 'connected' : 'disconnected',
    connected ? 'ComfyUI connected' : 'ComfyUI disconnected');
}

/** @param {{type: string, payload?: any, created_at?: string, ts?: number}} event */
function describe(event) {
  const p = event.payload || {};
  switch (event.type) {
    case 'comfy/connection':
      return p.connected ? 'ComfyUI connected' : `ComfyUI disconnected${p.error ? ` (${p.error})` : ''}`;
    case 'system/started':
      return `Studio ${p.version || ''} started`;
    case 'system/notice':
      return p.message || 'Notice';
    case 'auth/login':
      return `${p.username} signed in from ${p.ip}`;
    case 'auth/login_failed':
      return `Failed sign-in as ${p.username} from ${p.ip}${p.reason === 'rate_limited' ? ' (rate limited)' : ''}`;
    case 'auth/logout':
      return `${p.username} signed out`;
    case 'auth/token_created':
      return `${p.username} created API token "${p.name}" (${p.scope})`;
    case 'auth/token_revoked':
      return `${p.username} revoked API token "${p.name}"`;
    case 'jobs/finished':
      return `${p.workflow}: ${p.status}${p.error?.message ? ` (${p.error.message})` : ''}`;
    case 'downloads/finished':
      return `Download ${p.name}: ${p.status}${p.error ? ` (${p.error})` : ''}`;
    case 'settings/changed':
      return `${p.actor} changed settings: ${(p.changed || []).join(', ')}`;
    case 'auth/user_changed':
      return `User ${p.username || p.user_id}: ${String(p.action).replace('_', ' ')}${p.actor ? ` by ${p.actor}` : ''}`;
    default:
      return event.type;
  }
}

/** @param {{type: string, payload?: any, created_at?: string, ts?: number}} event @param {boolean} [prepend] */
function addActivity(event, prepend = true) {
  const list = document.getElementById('activity-list');
  if (!list) return;
  const when = event.created_at || event.ts || Date.now() / 1000;
  const item = h('li', { class: `activity-item activity-${event.type.replace('/', '-')}` },
    h('time', null, formatTime(when)), h('span', null, describe(event)));
  if (prepend) list.prepend(item); else list.append(item);
  while (list.children.length > 50) list.lastChild?.remove();
}

async function loadActivity() {
  try {
    const data = await api.get('/api/events?limit=30');
    const list = document.getElementById('activity-list');
    if (list) list.replaceChildren();
    for (const item of data.items) addActivity(item, false);
  } catch {
    // The activity panel is secondary; the page still works without it.
  }
}

async function loadComfyState() {
  try {
    const status = await api.get('/api/status');
    showComfyState(status.comfyui.socket === 'connected');
  } catch {
    setIndicator('comfy-indicator', 'unknown', 'ComfyUI unknown');
  }
}

function renderUserMenu() {
  const box = document.getElementById('user-menu');
  if (!box || !me) return;
  replace(box,
    h('a', { href: '/account', 'data-link': true, id: 'user-name' }, me.user.username),
    h('button', { class: 'link-button', id: 'logout', onclick: async () => {
      try { await api.post('/api/auth/logout'); } finally { location.assign('/login'); }
    } }, 'Sign out'));
}

async function start() {
  try {
    me = await api.get('/api/auth/me');
  } catch {
    return; // api.js already sent the browser to the sign-in page
  }
  setCsrfToken(me?.csrf_token ?? null);
  renderUserMenu();
  document.addEventListener('click', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const link = target.closest('a[data-link]');
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    const href = link.getAttribute('href') || '/';
    if (href.startsWith('/api/')) return;
    history.pushState(null, '', href);
    route();
  });
  window.addEventListener('popstate', route);
  const toggle = document.getElementById('nav-toggle');
  toggle?.addEventListener('click', () => {
    const open = document.body.classList.toggle('nav-open');
    toggle.setAttribute('aria-expanded', String(open));
  });
  live.addEventListener('open', () => setIndicator('studio-indicator', 'connected', 'Studio live'));
  live.addEventListener('close', () => {
    setIndicator('studio-indicator', 'disconnected', 'Studio offline');
    setIndicator('comfy-indicator', 'unknown', 'ComfyUI unknown');
  });
  live.addEventListener('resync', () => { loadComfyState(); loadActivity(); });
  live.on('comfy/connection', (payload) => showComfyState(Boolean(payload.connected)));
  live.on('any', (event) => {
    if (['comfy/connection', 'system/started', 'system/notice', 'settings/changed', 'jobs/finished',
      'downloads/finished'].includes(event.type)
      || event.type.startsWith('auth/')) {
      addActivity({ type: event.type, payload: event.payload, ts: event.ts });
    }
  });
  live.start();
  loadComfyState();
  loadActivity();
  route();
}

start();
