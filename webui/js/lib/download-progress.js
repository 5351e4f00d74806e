// @ts-check
/**
 * A download's progress where it was started (a Run form's missing model, a workflow's plan): one
 * line per download that follows `downloads/update` until it completes or fails. The Downloads page
 * holds the controls; this only says how far it is.
 */
import { h, replace } from './dom.js';
import { formatBytes, percent } from './format.js';
import { live } from './live.js';

/** @param {any} item */
function line(item) {
  const share = item.total_bytes ? percent(item.bytes_done, item.total_bytes) : 0;
  const bytes = item.total_bytes ? `${formatBytes(item.bytes_done)} of ${formatBytes(item.total_bytes)}` : formatBytes(item.bytes_done);
  const said = {
    completed: 'installed', failed: `failed: ${item.error || 'see Downloads'}`, cancelled: 'cancelled',
    paused: `paused at ${bytes}`, queued: 'waiting to start', verifying: 'checking the file',
  }[/** @type {string} */ (item.status)] || `${bytes}${item.speed ? ` · ${formatBytes(item.speed)}/s` : ''}`;
  return h('li', { class: `download-progress status-${item.status}`, 'data-download': item.id },
    h('span', null, `${item.name}: ${said}`),
    item.status === 'downloading' ? h('div', { class: 'meter-bar small-bar' }, h('div', { class: 'meter-fill', style: { width: `${share}%` } })) : null);
}

/**
 * A list that follows `items` (download views as POST /api/downloads answers them) live; it stops
 * listening when it leaves the page.
 * @param {any[]} items @returns {HTMLElement}
 */
export function downloadProgress(items) {
  const list = h('ul', { class: 'download-progress-list small', role: 'status' });
  /** @type {Map<string, any>} */
  const shown = new Map(items.map((item) => [item.id, item]));
  const render = () => replace(list, [...shown.values()].map(line));
  const stop = live.on('downloads/update', (item) => {
    if (!list.isConnected && list.dataset.mounted) { stop(); return; }
    if (!shown.has(item.id)) return;
    shown.set(item.id, item);
    render();
  });
  requestAnimationFrame(() => { list.dataset.mounted = '1'; });
  render();
  return list;
}
