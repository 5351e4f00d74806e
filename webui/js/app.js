// @ts-check
import { ActivityPanel, SHOWN_TYPES } from './lib/activity.js';
import { api, setCsrfToken } from './lib/api.js';
import { h, replace } from './lib/dom.js';
import { setViewer } from './lib/jobs.js';
import { live } from './lib/live.js';

/**
 * Every page. `prefix` pages are also about one thing named by the rest of the path (`/run/<id>`,
 * `/job/<id>`); `hidden` ones are reached by links, not the menu; `upcoming` ones are not built
 * yet and stay out of the menu (their address still says so plainly).
 */
const PAGES = [
  { path: '/run', title: 'Run', module: './pages/run.js', prefix: true },
  { path: '/queue', title: 'Queue', module: './pages/queue.js' },
  { path: '/history', title: 'History', module: './pages/history.js' },
  { path: '/workflows', title: 'Workflows', module: './pages/workflows.js' },
  { path: '/models', title: 'Models', module: './pages/models.js' },
  { path: '/loras', title: 'LoRAs', module: './pages/models.js' },
  { path: '/downloads', title: 'Downloads', module: './pages/downloads.js' },
  { path: '/system', title: 'System', module: './pages/home.js' },
  { path: '/presets', title: 'Presets', module: './pages/presets.js' },
  { path: '/gallery', title: 'Gallery', module: './pages/gallery.js' },
  { path: '/civitai', title: 'CivitAI', module: './pages/civitai.js' },
  { path: '/llm', title: 'LLM', module: './pages/llm.js' },
  { path: '/comfyui', title: 'ComfyUI', module: './pages/comfyui.js', admin: true },
  { path: '/settings', title: 'Settings', module: './pages/settings.js', admin: true },
  { path: '/users', title: 'Users', module: './pages/users.js', admin: true },
  { path: '/account', title: 'Account', module: './pages/account.js' },
  { path: '/apidocs', title: 'API', module: './pages/apidocs.js' },
  { path: '/webhooks', title: 'Webhooks', module: './pages/webhooks.js' },
  { path: '/telegram', title: 'Telegram', module: './pages/telegram.js', admin: true },
  { path: '/job', title: 'Job', module: './pages/job.js', hidden: true, prefix: true },
];
const LANDING = PAGES[0]; // a signed-in person lands on Run: making images is what Studio is for

/** @type {{user: {id: number, username: string, role: string}, csrf_token: string} | null} */
export let me = null;

/** @type {(() => void) | null} */
let unmountPage = null;

/** @param {string} path */
function pageFor(path) {
  if (path === '/') return LANDING;
  return PAGES.find((p) => p.path === path || (p.prefix && path.startsWith(`${p.path}/`))) || LANDING;
}

function renderNav() {
  const nav = /** @type {HTMLElement} */ (document.getElementById('sidenav'));
  const current = pageFor(location.pathname);
  const visible = PAGES.filter((page) => !page.hidden && !page.upcoming && (!page.admin || me?.user.role === 'admin'));
  replace(nav, h('ul', null, visible.map((page) => h('li', null,
    h('a', { href: page.path, 'data-link': true, 'aria-current': page === current ? 'page' : null }, page.title))),
  // A phone's top bar has no room for it: the theme switch lives in the menu there.
  h('li', { class: 'phone-only' }, h('button', { class: 'nav-button', id: 'theme-toggle-menu', 'data-theme-toggle': true,
    onclick: nextTheme }))));
  applyTheme(localStorage.getItem('studio-theme') || 'auto');
}

let routing = 0;

async function route() {
  const page = pageFor(location.pathname);
  const ticket = ++routing;
  renderNav();
  document.title = `${page.title} · ComfyUI Studio`;
  const module = page.module ? await import(page.module) : await import('./pages/upcoming.js');
  // A later navigation may have started while this page's module loaded: it wins.
  if (ticket !== routing) return;
  if (unmountPage) unmountPage();
  unmountPage = null;
  const main = /** @type {HTMLElement} */ (document.getElementById('page'));
  const ctx = { title: page.title, me, path: location.pathname, query: new URLSearchParams(location.search) };
  unmountPage = module.mount(main, ctx) || null;
  document.body.classList.remove('nav-open');
  document.getElementById('nav-toggle')?.setAttribute('aria-expanded', 'false');
}

/** @param {string} href an address inside the app */
export function navigate(href) {
  history.pushState(null, '', href);
  route();
}

/**
 * @param {string} id @param {string} state
 * @param {string} label what the indicator says on a wide screen
 * @param {string} short what it still says on a phone
 */
function setIndicator(id, state, label, short) {
  const el = document.getElementById(id);
  if (!el) return;
  el.dataset.state = state;
  el.dataset.short = short;
  el.title = label;
  const text = el.querySelector('.label');
  if (text) text.textContent = label;
}

/** @param {boolean} connected */
export function showComfyState(connected) {
  setIndicator('comfy-indicator', connected ? 'connected' : 'disconnected',
    connected ? 'ComfyUI connected' : 'ComfyUI disconnected', connected ? 'ComfyUI' : 'ComfyUI off');
}

async function loadComfyState() {
  try {
    const status = await api.get('/api/status');
    showComfyState(status.comfyui.socket === 'connected');
  } catch {
    setIndicator('comfy-indicator', 'unknown', 'ComfyUI unknown', 'ComfyUI ?');
  }
}

const THEMES = ['auto', 'light', 'dark'];

const THEME_NAMES = { auto: 'as the system', light: 'light', dark: 'dark' };

/** The theme follows the system unless the person picked one (remembered in this browser). @param {string} theme */
function applyTheme(theme) {
  const chosen = THEMES.includes(theme) ? theme : 'auto';
  if (chosen === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = chosen;
  const label = `Theme: ${THEME_NAMES[/** @type {'auto' | 'light' | 'dark'} */ (chosen)]} (change)`;
  for (const button of document.querySelectorAll('[data-theme-toggle]')) {
    button.setAttribute('aria-label', label);
    button.setAttribute('title', label);
    button.textContent = button.id === 'theme-toggle' ? ({ auto: '◐', light: '☀', dark: '☾' }[chosen] || '◐') : label;
  }
}

function nextTheme() {
  const next = THEMES[(THEMES.indexOf(localStorage.getItem('studio-theme') || 'auto') + 1) % THEMES.length];
  localStorage.setItem('studio-theme', next);
  applyTheme(next);
}

function renderUserMenu() {
  const box = document.getElementById('user-menu');
  if (!box || !me) return;
  const theme = h('button', { class: 'link-button icon-button', id: 'theme-toggle', 'data-theme-toggle': true, onclick: nextTheme });
  replace(box, theme,
    h('a', { href: '/account', 'data-link': true, id: 'user-name' }, me.user.username),
    h('button', { class: 'link-button', id: 'logout', onclick: async () => {
      try { await api.post('/api/auth/logout'); } finally { location.assign('/login'); }
    } }, 'Sign out'));
  applyTheme(localStorage.getItem('studio-theme') || 'auto');
}

/** @param {() => void} onToggle */
function wireShell(onToggle) {
  document.addEventListener('click', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const link = target.closest('a[data-link]');
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    const href = link.getAttribute('href') || '/';
    if (href.startsWith('/api/')) return;
    event.preventDefault();
    navigate(href);
  });
  window.addEventListener('popstate', route);
  // The skip link moves focus without touching the address (a #fragment would re-route the page).
  document.getElementById('skip-link')?.addEventListener('click', (event) => {
    event.preventDefault();
    document.getElementById('page')?.focus();
  });
  const toggle = document.getElementById('nav-toggle');
  toggle?.addEventListener('click', () => {
    const open = document.body.classList.toggle('nav-open');
    toggle.setAttribute('aria-expanded', String(open));
    onToggle();
  });
}

async function start() {
  applyTheme(localStorage.getItem('studio-theme') || 'auto');
  try {
    me = await api.get('/api/auth/me');
  } catch {
    return; // api.js already sent the browser to the sign-in page
  }
  setCsrfToken(me?.csrf_token ?? null);
  setViewer(me ? { id: me.user.id, role: me.user.role } : null);
  renderUserMenu();
  const panel = new ActivityPanel({
    panel: /** @type {HTMLElement} */ (document.getElementById('activity')),
    list: /** @type {HTMLElement} */ (document.getElementById('activity-list')),
    button: /** @type {HTMLElement} */ (document.getElementById('activity-button')),
    unread: /** @type {HTMLElement} */ (document.getElementById('activity-unread')),
    close: document.getElementById('activity-close'),
  });
  wireShell(() => panel.toggle(false));
  live.addEventListener('open', () => setIndicator('studio-indicator', 'connected', 'Studio live', 'Live'));
  live.addEventListener('close', () => {
    setIndicator('studio-indicator', 'disconnected', 'Studio offline', 'Offline');
    setIndicator('comfy-indicator', 'unknown', 'ComfyUI unknown', 'ComfyUI ?');
  });
  live.addEventListener('resync', () => { loadComfyState(); panel.load(); });
  live.on('comfy/connection', (payload) => showComfyState(Boolean(payload.connected)));
  live.on('any', (event) => {
    if (SHOWN_TYPES.includes(event.type) || event.type.startsWith('auth/')) {
      panel.add({ type: event.type, payload: event.payload, ts: event.ts });
    }
  });
  live.start();
  loadComfyState();
  panel.load();
  route();
}

start();
