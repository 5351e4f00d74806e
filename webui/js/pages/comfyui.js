// @ts-check
/**
 * ComfyUI: the ComfyUI Studio runs itself (admins: its state, Start/Stop/Restart, the command line
 * it runs with, its log as it grows) and the node packs it has. Log lines are put in as text only:
 * a custom node can print anything.
 */
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { renderNodePacks } from './comfyui-nodes.js';

/** @param {unknown} err */
const message = (err) => (err instanceof ApiError ? err.message : String(err));
const LOG_LINES = 400;
const LOG_POLL_MS = 2000; // a modest rate: one small request every two seconds while the page is open

/** What each state means, in words. */
const WORDS = {
  unmanaged: 'Studio does not run ComfyUI itself: it uses the ComfyUI at the configured address. Choose a ComfyUI folder on the Settings page to have Studio start it.',
  stopped: 'ComfyUI is stopped.',
  starting: 'ComfyUI is starting… (a first start can take minutes)',
  ready: 'ComfyUI is running.',
  crashed: 'ComfyUI stopped unexpectedly and is being restarted.',
  crash_loop: 'ComfyUI keeps failing, so Studio stopped trying.',
  external: 'A ComfyUI started by someone else answers on this port: Studio uses it, and does not stop or restart it.',
  stopping: 'Stopping ComfyUI…',
};

/** A command line as a person would type it (arguments with spaces quoted). @param {string[]} argv */
export function commandLine(argv) {
  return argv.map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : `'${part.replace(/'/g, `'"'"'`)}'`)).join(' ');
}

/** @param {HTMLElement} main @param {{me: any}} context */
export function mount(main, context) {
  const admin = context.me?.user.role === 'admin';
  const stateBox = h('div', { class: 'stack', id: 'comfyui-state', 'aria-live': 'polite' });
  const actions = h('div', { class: 'row comfyui-actions' });
  const facts = h('dl', { class: 'comfyui-facts', id: 'comfyui-facts' });
  const flags = h('pre', { class: 'comfyui-code', id: 'comfyui-flags' });
  const logBox = h('pre', { class: 'comfyui-code comfyui-log', id: 'comfyui-log', tabindex: '0', role: 'region', 'aria-label': 'ComfyUI log' });
  const logFile = h('p', { class: 'muted small', id: 'comfyui-log-file' });
  const packs = h('div', { id: 'comfyui-node-packs' });
  /** @type {any} */
  let shown = null;
  let busy = false;

  /** @param {string} label @param {string} action @param {boolean} enabled @param {string} [kind] */
  const button = (label, action, enabled, kind = 'button') => h('button', {
    class: kind, type: 'button', 'data-action': action, disabled: !enabled || busy,
    onclick: () => act(action),
  }, label);

  /** @param {any} s */
  function show(s) {
    shown = s;
    const state = s.state;
    replace(stateBox,
      h('p', null, h('span', { class: `badge comfyui-badge comfyui-${state}`, 'data-state': state }, state.replace('_', ' ')), ' ',
        /** @type {Record<string, string>} */ (WORDS)[state] || state),
      s.last_error && state !== 'ready' ? h('p', { class: 'error-line', id: 'comfyui-error', role: 'alert' }, s.last_error) : null,
      s.last_lines?.length ? h('details', { open: true, class: 'comfyui-last' }, h('summary', null, 'Its last lines'),
        h('pre', { class: 'comfyui-code', id: 'comfyui-last-lines', tabindex: '0', 'aria-label': 'Its last log lines' }, s.last_lines.join('\n'))) : null);
    const managed = s.managed && state !== 'external' && state !== 'unmanaged';
    const running = ['starting', 'ready', 'crashed'].includes(state);
    replace(actions, managed ? [
      button('Start', 'start', !running && state !== 'stopping'),
      button('Restart', 'restart', running, 'button secondary'),
      button('Stop', 'stop', running, 'button secondary'),
    ] : null);
    /** @type {[string, any][]} */
    const rows = [
      ['Address', s.url], ['Process', s.pid ? `pid ${s.pid}` : null],
      ['Ready since', s.ready_at ? formatTime(s.ready_at) : null], ['Restarts after a crash', s.restarts || null],
      ['Folder', s.comfyui_dir], ['Python', s.python],
    ];
    replace(facts, rows.filter(([, value]) => value !== null && value !== undefined && value !== '')
      .map(([name, value]) => [h('dt', null, name), h('dd', null, String(value))]));
    flags.textContent = s.argv ? commandLine(s.argv)
      : state === 'external' ? 'Started by someone else: its flags are its own.' : 'Not started yet.';
    logFile.textContent = s.log_file ? `The whole log: ${s.log_file} (older starts: .1 to .3)` : '';
  }

  /** @param {string} action */
  async function act(action) {
    busy = true;
    if (shown) show(shown);
    try {
      show(await api.post(`/api/comfyui/process/${action}`, {}));
      loadLog();
    } catch (err) {
      toast(message(err), 'error');
    } finally {
      busy = false;
      if (shown) show(shown);
    }
  }

  async function load() {
    try { show(await api.get('/api/comfyui/process')); }
    catch (err) { replace(stateBox, h('p', { class: 'error-line' }, message(err))); }
  }

  let lastLog = '';
  async function loadLog() {
    if (document.hidden) return;
    try {
      const text = (await api.get(`/api/comfyui/process/logs?lines=${LOG_LINES}`)).lines.join('\n');
      if (text === lastLog) return;
      // Follow the end only when the reader is at the end: scrolling up to read stays put.
      const atEnd = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
      lastLog = text;
      logBox.textContent = text || '(empty)';
      if (atEnd) logBox.scrollTop = logBox.scrollHeight;
    } catch (err) { logBox.textContent = message(err); }
  }

  replace(main, h('h1', null, 'ComfyUI'),
    admin ? [
      h('section', { class: 'card stack', id: 'comfyui-process', 'aria-labelledby': 'comfyui-process-title' },
        h('h2', { id: 'comfyui-process-title' }, 'Process'), stateBox, actions, facts),
      h('section', { class: 'card stack', id: 'comfyui-command', 'aria-labelledby': 'comfyui-command-title' },
        h('h2', { id: 'comfyui-command-title' }, 'Command line'), flags,
        h('p', { class: 'muted small' }, 'Extra flags, the interpreter and the folder are chosen on the ',
          h('a', { href: '/settings', 'data-link': true }, 'Settings page'), '; Studio sets where ComfyUI listens and which folders it reads and writes.')),
      h('section', { class: 'card stack', id: 'comfyui-logs', 'aria-labelledby': 'comfyui-log-title' },
        h('h2', { id: 'comfyui-log-title' }, 'Log'), logBox, logFile),
    ] : h('p', { class: 'muted' }, 'Only an admin sees and controls ComfyUI\u2019s process.'),
    packs);
  const stopPacks = renderNodePacks(packs);
  /** @type {(() => void)[]} */
  const off = [];
  if (admin) {
    load();
    loadLog();
    const timer = setInterval(loadLog, LOG_POLL_MS);
    off.push(() => clearInterval(timer), live.on('comfyui/process', (/** @type {any} */ payload) => { show(payload); loadLog(); }));
  }
  return () => {
    off.forEach((stopListening) => stopListening());
    if (typeof stopPacks === 'function') stopPacks();
  };
}
