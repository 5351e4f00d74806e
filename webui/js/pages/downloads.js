// @ts-check
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes, formatDuration, percent } from '../lib/format.js';
import { message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';

/** @param {any} item @param {() => void} reload */
export function downloadRow(item, reload) {
  const share = item.total_bytes ? percent(item.bytes_done, item.total_bytes) : 0;
  /** @param {string} action */
  const act = async (action) => {
    try { await api.post(`/api/downloads/${item.id}/${action}`); reload(); } catch (err) { toast(message(err), 'error'); }
  };
  const buttons = {
    queued: [['pause', 'Pause'], ['cancel', 'Cancel']], downloading: [['pause', 'Pause'], ['cancel', 'Cancel']],
    paused: [['resume', 'Resume'], ['cancel', 'Cancel']], failed: [['retry', 'Retry'], ['cancel', 'Remove']],
  }[/** @type {string} */ (item.status)] || [];
  return h('li', { class: `download status-${item.status}`, 'data-download': item.id },
    h('div', { class: 'row' }, h('span', { class: 'badge' }, item.status), h('strong', null, item.name),
      h('span', { class: 'muted small' }, item.path)),
    ['downloading', 'paused', 'queued'].includes(item.status) ? h('div', { class: 'meter-bar' },
      h('div', { class: 'meter-fill', style: { width: `${share}%` } })) : null,
    h('p', { class: 'muted small' }, [
      item.total_bytes ? `${formatBytes(item.bytes_done)} of ${formatBytes(item.total_bytes)}` : formatBytes(item.bytes_done),
      item.speed ? ` · ${formatBytes(item.speed)}/s` : '', item.eta_s ? ` · ${formatDuration(item.eta_s)} left` : ''].join('')),
    item.error ? h('p', { class: 'error-line' }, item.error) : null,
    item.status === 'completed' && item.sha256 ? h('p', { class: 'muted small mono', title: item.sha256 }, `SHA-256 ${item.sha256.slice(0, 16)}…${item.verified ? ' matches the expected hash' : ''}${item.revision ? ` · commit ${item.revision.slice(0, 10)}` : ''}`) : null,
    h('div', { class: 'row' }, buttons.map(([action, label]) => h('button', { class: 'link-button', onclick: () => act(action) }, label))));
}

/** @param {HTMLElement} main */
export function mount(main) {
  const list = h('ol', { class: 'download-list', id: 'download-list' });
  async function load() {
    try {
      const { items } = await api.get('/api/downloads');
      replace(list, items.length ? items.map((/** @type {any} */ item) => downloadRow(item, load))
        : h('li', { class: 'muted empty-line' }, 'No downloads yet: start one from Models or LoRAs.'));
    } catch (err) {
      replace(list, h('li', { class: 'error-line' }, message(err)));
    }
  }
  const stop = live.on('downloads/update', (item) => {
    const row = list.querySelector(`[data-download="${item.id}"]`);
    if (row) row.replaceWith(downloadRow(item, load)); else load();
  });
  /** @param {string} path */
  const all = async (path) => { try { await api.post(path); load(); } catch (err) { toast(message(err), 'error'); } };
  replace(main, h('h1', null, 'Downloads'),
    h('div', { class: 'row queue-bar' }, h('button', { class: 'link-button', onclick: () => all('/api/downloads/pause-all') }, 'Pause all'),
      h('button', { class: 'link-button', onclick: () => all('/api/downloads/resume-all') }, 'Resume all'),
      h('button', { class: 'link-button', onclick: () => all('/api/downloads/retry-failed') }, 'Retry failed'),
      h('button', { class: 'link-button danger-text', onclick: () => { if (confirm('Cancel every unfinished download? Partial files are deleted.')) all('/api/downloads/cancel-all'); } }, 'Cancel all')),
    h('section', { class: 'card' }, list));
  load();
  return stop;
}
