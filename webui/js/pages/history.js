// @ts-check
/**
 * History as a gallery: one tile per output, newest first, from the server's WebP thumbnails (a page of
 * 50 costs tens of kilobytes, not the tens of megabytes of the full PNGs). Jobs still running are cards
 * above the grid; failed and stopped ones are compact tiles, shown only when asked for. Tiles open the
 * lightbox; several can be selected to star, export or delete together.
 */
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { followJobs, jobCard, message } from '../lib/jobs.js';
import { openLightbox } from '../lib/lightbox.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';

const PAGE = 50;
const SHOWS = {
  results: { label: 'Results', status: 'completed' },
  stopped: { label: 'Failed and stopped', status: 'failed,cancelled,interrupted' },
  all: { label: 'Everything', status: '' },
};
const ACTIVE = 'queued,submitted,running';

/** @param {any} job @param {any} output */
const keyOf = (job, output) => `${job.id}:${output.id}`;

/** @param {string | null | undefined} text @param {number} length */
function snippet(text, length) {
  if (!text) return '';
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

/**
 * The thumbnails with their real widths (a thumbnail is never larger than its output), so a browser
 * never fetches the 768 one for a picture whose 256 one is already all there is.
 * @param {any} output
 */
function srcset(output) {
  const long = Math.max(output.width || 0, output.height || 0);
  const width = (/** @type {number} */ size) => (long && output.width ? Math.max(1, Math.round(output.width * Math.min(1, size / long))) : size);
  const small = width(256);
  const large = width(768);
  return large > small ? `${output.thumbs['256']} ${small}w, ${output.thumbs['768']} ${large}w` : `${output.thumbs['256']} ${small}w`;
}

/** @param {HTMLElement} main */
export function mount(main) {
  const grid = h('div', { id: 'history-list', class: 'result-grid' });
  const active = h('div', { id: 'history-active', class: 'job-list grid-list' });
  const more = h('button', { class: 'link-button', type: 'button', hidden: true }, 'Load more');
  const show = h('select', { name: 'show', 'aria-label': 'Show' },
    Object.entries(SHOWS).map(([value, { label }]) => h('option', { value }, label)));
  const workflow = h('select', { name: 'workflow', 'aria-label': 'Workflow' }, h('option', { value: '' }, 'any workflow'));
  const text = h('input', { name: 'q', type: 'search', placeholder: 'Search prompts', 'aria-label': 'Search prompts' });
  const since = h('input', { name: 'since', type: 'date', 'aria-label': 'Since' });
  const starredOnly = h('input', { type: 'checkbox', id: 'history-starred' });
  const selection = h('div', { class: 'selection-bar', id: 'history-selection', hidden: true, role: 'toolbar', 'aria-label': 'Selected results' });
  /** @type {Map<string, {job: any, output: any}>} */
  const entries = new Map();
  /** @type {Set<string>} */
  const selected = new Set();
  /** @type {string | null} */
  let next = null;
  /** @type {{close: () => void} | null} */
  let box = null;

  const value = (/** @type {HTMLElement} */ el) => /** @type {HTMLInputElement} */ (el).value;

  function query() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    const status = SHOWS[/** @type {keyof typeof SHOWS} */ (value(show))].status;
    if (status) params.set('status', status);
    if (value(workflow)) params.set('workflow', value(workflow));
    if (value(text)) params.set('q', value(text));
    if (value(since)) params.set('since', new Date(`${value(since)}T00:00:00`).toISOString());
    if (/** @type {HTMLInputElement} */ (starredOnly).checked) params.set('starred', 'true');
    return params;
  }

  /** @param {any} job @param {any} output */
  function tile(job, output) {
    const key = keyOf(job, output);
    entries.set(key, { job, output });
    const prompt = job.summary?.prompt;
    const label = snippet(prompt, 80) || `${job.workflow_name}: ${output.filename}`;
    const thumbs = output.thumbs;
    const picture = thumbs
      ? h('img', { src: thumbs['256'], srcset: srcset(output),
        sizes: '(max-width: 720px) 46vw, 220px', alt: label, loading: 'lazy', decoding: 'async', width: 256, height: 256 })
      : h('span', { class: 'tile-icon', 'aria-hidden': 'true' }, { video: '▶', audio: '♪' }[/** @type {'video'} */ (output.kind)] || '▤');
    const check = h('input', { type: 'checkbox', class: 'tile-select', 'aria-label': `Select ${label}`, checked: selected.has(key) || null });
    check.addEventListener('change', () => {
      if (/** @type {HTMLInputElement} */ (check).checked) selected.add(key); else selected.delete(key);
      figure.classList.toggle('selected', selected.has(key));
      renderSelection();
    });
    const figure = h('figure', { class: `result-tile${output.starred ? ' starred' : ''}`, 'data-job': job.id, 'data-key': key },
      h('button', { type: 'button', class: 'tile-open', 'aria-label': `Open ${label}`, onclick: () => open(key) }, picture),
      check,
      output.starred ? h('span', { class: 'tile-star', title: 'Starred' }, '★') : null,
      h('figcaption', { class: 'tile-caption' }, snippet(prompt, 60) || h('span', { class: 'muted' }, job.workflow_name)));
    return figure;
  }

  /** A failed, cancelled or interrupted job: small, with its reason and what to do. @param {any} job */
  function stoppedTile(job) {
    return h('article', { class: `result-tile compact status-${job.status}`, 'data-job': job.id },
      h('span', { class: 'badge' }, job.status_text || job.status),
      h('strong', { class: 'small' }, job.workflow_name),
      job.error?.message ? h('p', { class: 'small muted tile-error' }, snippet(job.error.message, 90)) : null,
      h('p', { class: 'small tile-links' },
        h('button', { type: 'button', class: 'link-button', 'data-action': 'retry', onclick: () => retry(job) }, 'Retry'),
        h('a', { class: 'link-button', href: `/job/${job.id}`, 'data-link': true }, 'Open')));
  }

  /** @param {any} job */
  async function retry(job) {
    try { await api.post(`/api/jobs/${job.id}/retry`); toast('Queued again.', 'success'); } catch (err) { toast(message(err), 'error'); }
  }

  /** @param {any} job */
  function tilesOf(job) {
    if (job.status === 'completed') return (job.outputs || []).map((/** @type {any} */ o) => tile(job, o));
    return job.status === 'queued' || job.status === 'submitted' || job.status === 'running' ? [] : [stoppedTile(job)];
  }

  /** @param {string} key */
  function open(key) {
    const order = [...grid.querySelectorAll('.result-tile[data-key]')].map((el) => /** @type {HTMLElement} */ (el).dataset.key || '');
    const items = order.map((k) => entries.get(k)).filter((e) => e !== undefined);
    box = openLightbox(/** @type {any[]} */ (items), Math.max(0, order.indexOf(key)), {
      onClose: () => { box = null; },
      onChange: (change) => {
        if (change.type === 'deleted' && change.output) removeTile(keyOf(change.job, change.output));
      },
    });
  }

  /** @param {string} key */
  function removeTile(key) {
    grid.querySelector(`[data-key="${key}"]`)?.remove();
    entries.delete(key);
    selected.delete(key);
    renderSelection();
  }

  function renderSelection() {
    selection.hidden = selected.size === 0;
    if (!selected.size) { replace(selection); return; }
    const picked = [...selected].map((k) => entries.get(k)).filter((e) => e !== undefined);
    const allStarred = picked.every((e) => e?.output.starred);
    let armed = false;
    const remove = h('button', { type: 'button', class: 'link-button danger', 'data-action': 'delete-selected', onclick: () => {
      if (!armed) { armed = true; remove.textContent = `Really delete ${selected.size}?`; return; }
      bulkDelete();
    } }, 'Delete');
    replace(selection,
      h('span', null, `${selected.size} selected`),
      h('button', { type: 'button', class: 'link-button', 'data-action': 'star-selected', onclick: () => bulkStar(!allStarred) },
        allStarred ? 'Unstar' : 'Star'),
      h('button', { type: 'button', class: 'link-button', 'data-action': 'export-selected', onclick: bulkExport }, 'Export'),
      remove,
      h('button', { type: 'button', class: 'link-button', onclick: () => {
        selected.clear();
        grid.querySelectorAll('.tile-select').forEach((c) => { /** @type {HTMLInputElement} */ (c).checked = false; });
        grid.querySelectorAll('.result-tile.selected').forEach((c) => c.classList.remove('selected'));
        renderSelection();
      } }, 'Clear'));
  }

  /** @param {boolean} starred */
  async function bulkStar(starred) {
    try {
      for (const key of selected) {
        const entry = entries.get(key);
        if (!entry) continue;
        await api.post(`/api/jobs/${entry.job.id}/outputs/${entry.output.id}/star`, { starred });
        entry.output.starred = starred;
        const el = grid.querySelector(`[data-key="${key}"]`);
        el?.classList.toggle('starred', starred);
        el?.querySelector('.tile-star')?.remove();
        if (starred) el?.querySelector('.tile-open')?.after(h('span', { class: 'tile-star', title: 'Starred' }, '★'));
      }
    } catch (err) {
      toast(message(err), 'error');
    }
    renderSelection();
  }

  function bulkExport() {
    const jobs = new Set([...selected].map((k) => k.split(':')[0]));
    for (const id of jobs) {
      const link = h('a', { href: `/api/jobs/${id}/export`, download: '', hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    }
    toast(`Exporting ${jobs.size} job${jobs.size === 1 ? '' : 's'} as ZIP files.`, 'success');
  }

  async function bulkDelete() {
    /** @type {Map<string, {job: any, keys: string[]}>} */
    const byJob = new Map();
    for (const key of selected) {
      const entry = entries.get(key);
      if (!entry) continue;
      const found = byJob.get(entry.job.id) || { job: entry.job, keys: [] };
      found.keys.push(key);
      byJob.set(entry.job.id, found);
    }
    let failed = 0;
    for (const { job, keys } of byJob.values()) {
      try {
        if (keys.length >= (job.outputs || []).length) await api.del(`/api/jobs/${job.id}`);
        else for (const key of keys) await api.del(`/api/jobs/${job.id}/outputs/${key.split(':')[1]}`);
        keys.forEach(removeTile);
      } catch (err) {
        failed += 1;
        toast(message(err), 'error');
      }
    }
    if (!failed) toast('Deleted.', 'success');
  }

  /** @param {boolean} append */
  async function load(append) {
    const params = query();
    if (append && next) params.set('before', next);
    try {
      const page = await api.get(`/api/jobs?${params}`);
      if (!append) {
        entries.clear();
        selected.clear();
        renderSelection();
      }
      const tiles = page.items.flatMap(tilesOf);
      if (append) grid.append(...tiles);
      else {
        replace(grid, tiles.length ? tiles : h('p', { class: 'muted empty-line' }, 'Nothing here yet: results appear as jobs finish.'));
      }
      next = page.next;
      more.hidden = !next;
    } catch (err) {
      replace(grid, h('p', { class: 'error-line' }, message(err)));
    }
  }

  async function loadActive() {
    try {
      const page = await api.get(`/api/jobs?status=${ACTIVE}&limit=20`);
      replace(active, page.items.map((/** @type {any} */ job) => jobCard(job, { compact: true })));
    } catch {
      replace(active);  // the grid below still works
    }
  }

  /** A job that finished while the page is open: its tiles go first, if the filters want them. @param {any} update */
  async function finished(update) {
    if (update.deleted) { grid.querySelectorAll(`[data-job="${update.id}"]`).forEach((el) => el.remove()); return; }
    if (!['completed', 'failed', 'cancelled', 'interrupted'].includes(update.status)) return;
    const status = SHOWS[/** @type {keyof typeof SHOWS} */ (value(show))].status;
    if ((status && !status.split(',').includes(update.status)) || (value(workflow) && value(workflow) !== update.workflow_id)) return;
    if (grid.querySelector(`[data-job="${update.id}"]`)) return;
    try {
      const job = await api.get(`/api/jobs/${update.id}`);
      grid.querySelector('.empty-line')?.remove();
      grid.prepend(...tilesOf(job));
    } catch {
      // gone already (deleted in another tab): nothing to show
    }
  }

  api.get('/api/workflows').then(({ items }) => {
    workflow.append(...items.map((/** @type {any} */ w) => h('option', { value: w.id }, w.name)));
  }).catch(() => {});
  let timer = 0;
  for (const field of [show, workflow, since]) field.addEventListener('change', () => load(false));
  text.addEventListener('input', () => { clearTimeout(timer); timer = window.setTimeout(() => load(false), 250); });
  starredOnly.addEventListener('change', () => { // jobs with a star come from the server; their other tiles hide here
    grid.classList.toggle('starred-only', /** @type {HTMLInputElement} */ (starredOnly).checked);
    load(false);
  });
  more.addEventListener('click', () => load(true));
  const stops = [
    followJobs(active, (job) => ['queued', 'submitted', 'running'].includes(job.status), { compact: true }),
    live.on('jobs/update', finished),
  ];
  replace(main, h('h1', null, 'History'),
    h('div', { class: 'row filters' }, show, workflow, text, since,
      h('label', { class: 'check', for: 'history-starred' }, starredOnly, ' Starred only')),
    selection, active, grid, h('div', { class: 'row' }, more));
  loadActive();
  load(false);
  return () => { stops.forEach((stop) => stop()); box?.close(); };
}
