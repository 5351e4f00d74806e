// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes, percent } from '../lib/format.js';
import { message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { downloadRow } from './downloads.js';
import { civitaiBar, civitaiLines, loadMetadata, previewCell } from './models-civitai.js';
import { Drafts } from './run-drafts.js';

const ACTIVE = new Set(['queued', 'downloading', 'paused', 'verifying']);

/** @param {any} entry */
function statusCell(entry) {
  const d = entry.download;
  const bar = d && ACTIVE.has(entry.status) && d.total_bytes
    ? h('div', { class: 'meter-bar small-bar' }, h('div', { class: 'meter-fill', style: { width: `${percent(d.bytes_done, d.total_bytes)}%` } }))
    : null;
  return h('td', { class: 'model-status' }, h('span', { class: `badge model-${entry.status}` }, entry.status),
    entry.verified ? h('span', { class: 'badge model-verified', title: `SHA-256 ${entry.sha256}` }, 'verified') : null,
    entry.hash_mismatch ? h('span', { class: 'badge model-failed', title: 'The file on disk has another SHA-256 than the catalog says' }, 'different file') : null,
    bar, d?.error && entry.status !== 'present' ? h('div', { class: 'error-line small' }, d.error) : null);
}

/** Models and LoRAs: catalogs by category, what is on disk, downloads, catalog import.
 * @param {HTMLElement} main @param {{title: string, me: any}} context */
export function mount(main, context) {
  const kind = context.title === 'LoRAs' ? 'loras' : 'models';
  const admin = context.me?.user.role === 'admin';
  const lastRun = new Drafts(context.me).lastWorkflow();
  const search = h('input', { type: 'search', placeholder: 'Search by name, file or tag', 'aria-label': 'Search' });
  const statusFilter = h('select', { 'aria-label': 'Status' }, ['all', 'missing', 'present', 'downloading'].map((s) =>
    h('option', { value: s }, s === 'all' ? 'Any status' : s)));
  const baseFilter = h('select', { 'aria-label': 'Base model' });
  const body = h('div', { class: 'stack', id: 'model-list' });
  const disk = h('p', { class: 'muted', id: 'models-disk' });
  const batchButton = h('button', { class: 'button', id: 'download-selected', disabled: true, onclick: () => downloadSelected() }, 'Download selected');
  /** @type {Set<string>} */
  const selected = new Set();
  /** @type {any} */
  let data = null;
  /** @type {import('./models-civitai.js').Metadata | null} CivitAI's word on each file, by SHA-256 */
  let meta = null;
  const civitaiSlot = h('div', { id: 'civitai-slot' });
  const about = (/** @type {string | null} */ sha) => (sha && meta ? meta.items[sha] : null);

  const value = (/** @type {any} */ el) => /** @type {HTMLInputElement} */ (el).value;

  function matches(/** @type {any} */ e) {
    const term = value(search).toLowerCase();
    const status = value(statusFilter);
    const base = value(baseFilter);
    return (!term || `${e.name} ${e.file} ${(e.tags || []).join(' ')} ${e.base_model || ''}`.toLowerCase().includes(term))
      && (status === 'all' || (status === 'downloading' ? ACTIVE.has(e.status) : e.status === status))
      && (!base || e.base_model === base);
  }

  function updateBatch() {
    const entries = data ? data.catalogs[kind].entries.filter((/** @type {any} */ e) => selected.has(e.file)) : [];
    const gb = entries.reduce((/** @type {number} */ sum, /** @type {any} */ e) => sum + (e.size_gb || 0), 0);
    batchButton.textContent = entries.length ? `Download selected (${entries.length}, ${gb.toFixed(1)} GB)` : 'Download selected';
    if (entries.length) batchButton.removeAttribute('disabled'); else batchButton.setAttribute('disabled', '');
  }

  /** @param {any} e */
  function entryRow(e) {
    const canPick = e.status === 'missing' || e.status === 'failed';
    const box = canPick ? h('input', { type: 'checkbox', 'aria-label': `Select ${e.name}`, checked: selected.has(e.file) || undefined,
      onchange: (/** @type {Event} */ ev) => {
        if (/** @type {HTMLInputElement} */ (ev.target).checked) selected.add(e.file); else selected.delete(e.file);
        updateBatch();
      } }) : null;
    const where = e.found_at && e.found_at !== `${e.dest.replace(/^\/|\/$/g, '')}/${e.file}` ? ` · found at ${e.found_at}` : '';
    return h('tr', { 'data-file': e.file },
      h('td', { class: 'pick' }, box),
      h('td', null, h('div', { class: 'with-preview' }, previewCell(about(e.sha256), e.name), h('div', null,
        h('strong', null, e.name), e.pair_role ? h('span', { class: `badge role-${e.pair_role}` }, e.pair_role) : null,
        h('div', { class: 'muted small path' }, `${e.dest}/${e.file}${where}`), civitaiLines(about(e.sha256))))),
      h('td', { class: 'hide-narrow' }, e.base_model || ''),
      h('td', null, e.size ? formatBytes(e.size) : e.size_gb ? `${e.size_gb} GB` : ''),
      statusCell(e),
      h('td', { class: 'actions-cell' },
        canPick ? h('button', { class: 'link-button', onclick: () => download([e.file]) }, 'Download') : null,
        admin && e.status === 'present' && e.found_at ? h('button', { class: 'link-button danger-text', onclick: () => deleteFile(e.found_at) }, 'Delete file') : null,
        admin ? h('button', { class: 'link-button muted', onclick: () => removeEntry(e.file, e.name) }, 'Remove entry') : null));
  }

  /** A file no catalog lists: its name, folder and size, and Run on a workflow that can use it. @param {any} u */
  function unlistedRow(u) {
    // the workflow this person ran last comes first, as Run itself would open on it
    const uses = [...(data.uses?.[u.folder] || [])].sort((a, b) => Number(b.workflow_id === lastRun) - Number(a.workflow_id === lastRun));
    /** @param {any} use */
    const href = (use) => `/run/${encodeURIComponent(use.workflow_id)}?${new URLSearchParams({ [use.param]: u.file })}`;
    const link = uses.length ? h('a', { class: 'button secondary small-button use-in-run', 'data-link': '', href: href(uses[0]) }, 'Use in Run') : null;
    const which = uses.length > 1 ? h('select', { class: 'use-with', 'aria-label': `Workflow to use ${u.name} in`, onchange: (/** @type {Event} */ e) => {
      link?.setAttribute('href', href(uses[Number(/** @type {HTMLSelectElement} */ (e.target).value)]));
    } }, uses.map((/** @type {any} */ use, /** @type {number} */ i) => h('option', { value: String(i) }, use.workflow_name))) : null;
    const where = [u.folder, u.sub_folder].filter(Boolean).join('/');
    return h('tr', { 'data-path': u.path },
      h('td', null, h('div', { class: 'with-preview' }, previewCell(about(u.sha256), u.name), h('div', null,
        h('strong', { class: 'model-name' }, u.name),
        h('div', { class: 'muted small' }, h('span', { class: 'badge folder-badge' }, where || u.folder),
          u.location !== 'models' ? ` in ${u.location}` : null),
        h('div', { class: 'muted small path', title: u.sha256 ? `SHA-256 ${u.sha256}` : 'SHA-256 not computed yet' }, u.path),
        civitaiLines(about(u.sha256))))),
      h('td', { class: 'size-cell' }, formatBytes(u.size)),
      h('td', { class: 'actions-cell' }, link, which,
        uses.length ? null : h('span', { class: 'muted small' }, `No workflow picks from ${u.folder}`),
        admin && u.location === 'models' ? h('button', { class: 'link-button danger-text', onclick: () => deleteFile(u.path) }, 'Delete file') : null));
  }

  /** @param {any[]} pairs */
  function pairsCard(pairs) {
    pairs = pairs.filter((p) => !p.both); // a single file for both halves is listed with the rest
    if (!pairs.length) return null;
    /** @param {any} member @param {string} role */
    const cell = (member, role) => member ? h('span', { class: 'pair-member' }, h('span', { class: `badge role-${role}` }, role),
      h('span', { class: `badge model-${member.status}` }, member.status), h('span', { class: 'path' }, member.file)) : null;
    return h('section', { class: 'card', id: 'lora-pairs' }, h('h2', null, 'Pairs'),
      h('p', { class: 'muted small' }, 'WAN 2.2 LoRAs come as a high-noise and a low-noise file; the run form picks them together.'),
      h('div', { class: 'table-scroll' }, h('table', { class: 'list pairs' }, h('tbody', null, pairs.map((p) => h('tr', { 'data-pair': p.pair_id },
        h('td', null, h('strong', null, p.name), h('div', { class: 'muted small' }, p.base_model || '')),
        h('td', null, cell(p.high, 'high'), h('br'), cell(p.low, 'low'),
          p.complete ? null : h('div', { class: 'error-line small' }, 'Incomplete pair: one half is not in the catalog.')),
        h('td', null, p.installed ? h('span', { class: 'badge model-present' }, 'installed')
          : h('button', { class: 'link-button', onclick: () => download([p.high, p.low].filter((m) => m && m.status !== 'present').map((m) => m.file)) }, 'Download pair'))))))));
  }

  function render() {
    if (!data) return;
    const catalog = data.catalogs[kind];
    const bases = [...new Set(catalog.entries.map((/** @type {any} */ e) => e.base_model).filter(Boolean))].sort();
    const chosenBase = value(baseFilter);
    replace(baseFilter, h('option', { value: '' }, 'Any base model'), bases.map((b) => h('option', { value: b, selected: b === chosenBase || undefined }, b)));
    const entries = catalog.entries.filter(matches);
    /** @type {Record<string, any[]>} */
    const groups = {};
    for (const entry of entries) (groups[entry.category] ||= []).push(entry);
    replace(disk, `Models folder ${data.root}: ${formatBytes(data.disk.free)} free of ${formatBytes(data.disk.total)} (${percent(data.disk.used, data.disk.total)}% used)`);
    const unlisted = data.unlisted.filter((/** @type {any} */ u) => u.category !== 'llm' && (kind === 'loras') === (u.category === 'loras'));
    replace(civitaiSlot, civitaiBar(meta, admin));
    replace(body,
      catalog.problems.length ? h('section', { class: 'card' }, h('h2', null, 'Entries that could not be read'),
        h('ul', { class: 'error-line' }, catalog.problems.map((/** @type {string} */ p) => h('li', null, p)))) : null,
      kind === 'loras' ? pairsCard(catalog.pairs.filter((/** @type {any} */ p) => (!value(baseFilter) || p.base_model === value(baseFilter))
        && (!value(search) || p.name.toLowerCase().includes(value(search).toLowerCase())))) : null,
      Object.keys(groups).length ? Object.entries(groups).map(([category, items]) => h('section', { class: 'card', 'data-category': category },
        h('h2', null, category || 'other', h('span', { class: 'muted small' }, ` · ${items.length}`)),
        h('div', { class: 'table-scroll' }, h('table', { class: 'list' }, h('tbody', null, items.map(entryRow))))))
        : h('p', { class: 'muted' }, catalog.entries.length ? 'Nothing matches.' : 'This catalog is empty. Import one below.'),
      unlisted.length ? h('section', { class: 'card', id: 'unlisted' }, h('h2', null, 'Your other files',
        h('span', { class: 'muted small' }, ` · ${unlisted.length} on disk that no catalog lists`)),
        h('div', { class: 'table-scroll' }, h('table', { class: 'list' }, h('tbody', null, unlisted.map(unlistedRow))))) : null);
    updateBatch();
  }

  /** CivitAI's metadata comes separately, so the catalogs never wait for it. */
  async function loadCivitai() {
    meta = await loadMetadata();
    render();
  }

  async function load() {
    loadCivitai();
    try {
      data = await api.get('/api/models');
      renderFolders();
      render();
    } catch (err) {
      replace(body, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** Downloads in progress, and every one started here (until the page is left), live. */
  /** @type {Map<string, any>} */
  const tracked = new Map();
  const downloadList = h('ol', { class: 'download-list', id: 'models-downloads-list' });
  const downloadsCard = h('section', { class: 'card', id: 'models-downloads', hidden: true },
    h('h2', null, 'Downloads', ' ', h('a', { class: 'muted small', 'data-link': '', href: '/downloads' }, 'see all')), downloadList);

  function renderDownloads() {
    downloadsCard.hidden = tracked.size === 0;
    replace(downloadList, [...tracked.values()].map((item) => downloadRow(item, loadDownloads)));
  }

  /** @param {any} item */
  function track(item) {
    tracked.set(item.id, item);
    renderDownloads();
  }

  async function loadDownloads() {
    try {
      const { items } = await api.get('/api/downloads');
      for (const item of items) {
        if (tracked.has(item.id) || ACTIVE.has(item.status)) tracked.set(item.id, item);
      }
      renderDownloads();
    } catch { /* the catalog rows still say what is downloading */ }
  }

  /** @param {string[]} filesToGet */
  async function download(filesToGet) {
    try {
      if (filesToGet.length === 1) {
        track(await api.post('/api/downloads', { catalog_file: filesToGet[0] }));
        toast(`${filesToGet[0]} queued.`, 'success');
      } else {
        const answer = await api.post('/api/downloads/batch', { catalog_files: filesToGet });
        answer.queued.forEach(track);
        toast(`${answer.queued.length} queued.`, 'success');
        for (const r of answer.refused) toast(`${r.file}: ${r.message}`, 'error');
      }
    } catch (err) {
      toast(message(err), 'error');
    }
    load();
  }

  async function downloadSelected() {
    const files = [...selected];
    selected.clear();
    await download(files);
  }

  /** @param {string} path */
  async function deleteFile(path) {
    if (!confirm(`Delete ${path} from the models folder? This cannot be undone.`)) return;
    try {
      await api.del(`/api/models/files?path=${encodeURIComponent(path)}`);
      toast(`${path} deleted.`, 'success');
      load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  /** @param {string} file @param {string} name */
  async function removeEntry(file, name) {
    if (!confirm(`Remove ${name} from the catalog? A file already on disk stays.`)) return;
    try {
      await api.del(`/api/catalogs/${kind}/entries/${encodeURIComponent(file)}`);
      load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  const importError = h('p', { class: 'error-line', role: 'alert' });
  const importForm = h('form', { id: 'catalog-import', class: 'stack', onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    importError.textContent = '';
    const form = /** @type {HTMLFormElement} */ (e.target);
    const file = /** @type {HTMLInputElement} */ (form.elements.namedItem('catalog')).files?.[0];
    if (!file) return;
    let catalog;
    try {
      catalog = JSON.parse(await file.text());
    } catch {
      importError.textContent = `${file.name} is not valid JSON.`;
      return;
    }
    try {
      const mode = /** @type {HTMLSelectElement} */ (form.elements.namedItem('mode')).value;
      const result = await api.post(`/api/catalogs/${kind}`, { catalog, mode });
      toast(`Imported: ${result.added} added, ${result.replaced} updated.`, 'success');
      if (result.problems.length) importError.textContent = `Skipped: ${result.problems.join('; ')}`;
      form.reset();
      load();
    } catch (err) {
      importError.textContent = err instanceof ApiError ? err.message : String(err);
    }
  } },
  h('div', { class: 'row' },
    h('label', null, 'Catalog file (JSON)', h('input', { type: 'file', name: 'catalog', accept: '.json,application/json', required: true })),
    h('label', null, 'How', h('select', { name: 'mode' }, h('option', { value: 'merge' }, 'Merge: add new, update same file'),
      h('option', { value: 'replace' }, 'Replace the whole catalog')))),
  importError, h('button', { class: 'button', type: 'submit' }, 'Import'));

  const urlError = h('p', { class: 'error-line', role: 'alert' });
  const folderSelect = h('select', { name: 'dest', required: true, id: 'url-dest' });
  /** The folders a download may go to: ComfyUI's own, then those the catalogs and the disk use. */
  function renderFolders() {
    const chosen = value(folderSelect) || (kind === 'loras' ? 'loras' : 'checkpoints');
    replace(folderSelect, (data?.folders || ['checkpoints', 'loras', 'vae']).map((/** @type {string} */ f) =>
      h('option', { value: f, selected: f === chosen || undefined }, f)));
  }
  renderFolders();
  const urlForm = h('form', { id: 'url-download', class: 'stack', onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    urlError.textContent = '';
    const form = /** @type {HTMLFormElement} */ (e.target);
    const d = new FormData(form);
    const sub = String(d.get('sub') || '').trim().replace(/^\/+|\/+$/g, '');
    try {
      const item = await api.post('/api/downloads', { url: String(d.get('url')).trim(),
        dest: [String(d.get('dest') || ''), sub].filter(Boolean).join('/'),
        file: String(d.get('file') || '').trim() || null,
        sha256: d.get('sha256') ? String(d.get('sha256')) : null, allow_pickle: d.get('allow_pickle') === 'on' });
      track(item);
      toast(item.path.endsWith('/') ? `Queued into ${item.path}: the server names the file when it answers.` : `${item.name} queued.`, 'success');
      form.reset();
      load();
    } catch (err) {
      urlError.textContent = err instanceof ApiError ? err.message : String(err);
    }
  } },
  h('div', { class: 'row' },
    h('label', { class: 'wide-field' }, 'URL', h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://…' })),
    h('label', null, 'Folder', folderSelect),
    h('label', null, 'Sub folder (optional)', h('input', { name: 'sub', placeholder: 'sd15' })),
    h('label', null, 'File name (optional)', h('input', { name: 'file', placeholder: 'from the URL or the server' })),
    h('label', null, 'SHA-256 (optional)', h('input', { name: 'sha256', pattern: '[0-9a-fA-F]{64}' })),
    h('label', { class: 'checkbox' }, h('input', { type: 'checkbox', name: 'allow_pickle' }), 'Allow a pickle file (.ckpt, .pt, .bin)')),
  urlError, h('button', { class: 'button', type: 'submit' }, 'Download'));

  for (const el of [search, statusFilter, baseFilter]) el.addEventListener(el === search ? 'input' : 'change', render);
  const stops = [
    live.on('downloads/finished', () => load()),
    live.on('catalogs/changed', (p) => { if (p.kind === kind) load(); }),
    live.on('models/metadata', () => loadCivitai()),
    live.on('downloads/update', (item) => {
      if (tracked.has(item.id) || ACTIVE.has(item.status)) track(item);
      if (!data) return;
      const entry = data.catalogs[kind].entries.find((/** @type {any} */ e) => `${e.dest.replace(/^\/|\/$/g, '')}/${e.file}` === item.path);
      if (!entry || entry.status === 'present') return;
      entry.download = item;
      entry.status = item.status === 'completed' ? 'present' : item.status === 'cancelled' ? 'missing' : item.status;
      body.querySelector(`tr[data-file="${CSS.escape(entry.file)}"]`)?.replaceWith(entryRow(entry));
    }),
  ];
  replace(main, h('h1', null, context.title), disk,
    h('div', { class: 'row filters' }, search, statusFilter, baseFilter, batchButton), civitaiSlot,
    admin ? h('details', { class: 'card' }, h('summary', null, 'Import a catalog JSON'), importForm) : null,
    admin ? h('details', { class: 'card' }, h('summary', null, 'Download from a URL'), urlForm) : null,
    downloadsCard, body);
  load();
  loadDownloads();
  return () => stops.forEach((stop) => stop());
}
