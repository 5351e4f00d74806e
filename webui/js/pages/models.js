// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes, percent } from '../lib/format.js';
import { message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';

/** Models and LoRAs: the catalog by category, what is on disk, one-click downloads. */
/** @param {HTMLElement} main @param {{title: string, me: any}} context */
export function mount(main, context) {
  const kind = context.title === 'LoRAs' ? 'loras' : 'models';
  const search = h('input', { type: 'search', placeholder: 'Search by name, file or tag', 'aria-label': 'Search' });
  const body = h('div', { class: 'stack', id: 'model-list' });
  const disk = h('p', { class: 'muted', id: 'models-disk' });
  /** @type {any} */
  let data = null;

  function render() {
    if (!data) return;
    const catalog = data.catalogs[kind];
    const term = /** @type {HTMLInputElement} */ (search).value.toLowerCase();
    const entries = catalog.entries.filter((/** @type {any} */ e) => !term
      || `${e.name} ${e.file} ${(e.tags || []).join(' ')} ${e.base_model || ''}`.toLowerCase().includes(term));
    /** @type {Record<string, any[]>} */
    const groups = {};
    for (const entry of entries) (groups[entry.category] ||= []).push(entry);
    replace(disk, `Models folder ${data.root}: ${formatBytes(data.disk.free)} free of ${formatBytes(data.disk.total)} (${percent(data.disk.used, data.disk.total)}% used)`);
    replace(body,
      catalog.problems.length ? h('section', { class: 'card' }, h('h2', null, 'Entries that could not be read'),
        h('ul', { class: 'error-line' }, catalog.problems.map((/** @type {string} */ p) => h('li', null, p)))) : null,
      Object.keys(groups).length ? Object.entries(groups).map(([category, items]) => h('section', { class: 'card' },
        h('h2', null, category || 'other'),
        h('table', { class: 'list' }, h('tbody', null, items.map((/** @type {any} */ e) => h('tr', { 'data-file': e.file },
          h('td', null, h('strong', null, e.name), h('div', { class: 'muted small' }, `${e.dest}/${e.file}`)),
          h('td', { class: 'hide-narrow' }, e.base_model || ''),
          h('td', null, e.size_gb ? `${e.size_gb} GB` : ''),
          h('td', null, h('span', { class: `badge model-${e.status}` }, e.status)),
          h('td', null, e.status === 'missing' || e.status === 'failed'
            ? h('button', { class: 'link-button', onclick: () => download(e.file) }, 'Download') : null)))))))
        : h('p', { class: 'muted' }, catalog.entries.length ? 'Nothing matches.' : 'This catalog is empty.'),
      kind === 'models' && data.unlisted.length ? h('section', { class: 'card' }, h('h2', null, 'On disk, not in a catalog'),
        h('ul', null, data.unlisted.map((/** @type {any} */ u) => h('li', null, `${u.path} · ${formatBytes(u.size)}`)))) : null);
  }

  async function load() {
    try {
      data = await api.get('/api/models');
      render();
    } catch (err) {
      replace(body, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** @param {string} file */
  async function download(file) {
    try {
      await api.post('/api/downloads', { catalog_file: file });
      toast(`${file} queued.`, 'success');
      load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  const urlError = h('p', { class: 'error-line', role: 'alert' });
  const urlForm = h('form', { id: 'url-download', class: 'stack', onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    urlError.textContent = '';
    const form = /** @type {HTMLFormElement} */ (e.target);
    const d = new FormData(form);
    try {
      await api.post('/api/downloads', { url: String(d.get('url')), dest: String(d.get('dest') || ''), file: String(d.get('file')),
        sha256: d.get('sha256') ? String(d.get('sha256')) : null, allow_pickle: d.get('allow_pickle') === 'on' });
      toast('Download queued.', 'success');
      form.reset();
      load();
    } catch (err) {
      urlError.textContent = err instanceof ApiError ? err.message : String(err);
    }
  } },
  h('div', { class: 'row' },
    h('label', null, 'URL', h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://…' })),
    h('label', null, 'Folder', h('input', { name: 'dest', placeholder: 'checkpoints' })),
    h('label', null, 'File name', h('input', { name: 'file', required: true, placeholder: 'model.safetensors' })),
    h('label', null, 'SHA-256 (optional)', h('input', { name: 'sha256', pattern: '[0-9a-fA-F]{64}' })),
    h('label', { class: 'checkbox' }, h('input', { type: 'checkbox', name: 'allow_pickle' }), 'Allow a pickle file (.ckpt, .pt, .bin)')),
  urlError, h('button', { class: 'button', type: 'submit' }, 'Download'));

  search.addEventListener('input', render);
  const stops = [live.on('downloads/finished', () => load())];
  replace(main, h('h1', null, context.title), disk,
    h('div', { class: 'row filters' }, search),
    context.me?.user.role === 'admin' && kind === 'models'
      ? h('details', { class: 'card' }, h('summary', null, 'Download from a URL'), urlForm) : null,
    body);
  load();
  return () => stops.forEach((stop) => stop());
}
