// @ts-check
/**
 * The Gallery: everything made (and found in the output folder) in one justified grid, newest first,
 * found by words (prompt, negative prompt, model, LoRAs, tags) and filters, a page at a time as the
 * grid scrolls. Tiles keep their picture's shape: each row is filled edge to edge, each tile's width
 * its aspect ratio times the row height. Tiles open the lightbox (gallery-lightbox.js); several can be
 * selected to star, put on a board, download as one ZIP or delete together.
 */
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { nsfwControl } from './gallery-civitai.js';
import { openCompare } from './gallery-compare.js';
import { openGalleryBox } from './gallery-lightbox.js';

const PAGE = 60;
const ROW = 200; // px: the height a row aims for before it is stretched to the full width

/** @param {string | null | undefined} text @param {number} length */
function snippet(text, length) {
  if (!text) return '';
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

/** @param {any} item */
const ratioOf = (item) => Math.min(3, Math.max(0.4, item.width && item.height ? item.width / item.height : 1));

/** @param {HTMLElement} main */
export function mount(main) {
  const grid = h('div', { id: 'gallery-grid', class: 'gallery-grid', 'aria-label': 'Gallery items' });
  const sentinel = h('div', { class: 'gallery-sentinel', 'aria-hidden': 'true' });
  const more = h('button', { class: 'link-button', type: 'button', hidden: true, id: 'gallery-more' }, 'Load more');
  const status = h('p', { class: 'muted small', id: 'gallery-status', 'aria-live': 'polite' });
  const text = h('input', { id: 'gallery-q', name: 'q', type: 'search', placeholder: 'Search prompts, models, LoRAs, tags', 'aria-label': 'Search' });
  /** @param {string} name @param {string} label @param {[string, string][]} options */
  const select = (name, label, options) => h('select', { id: `gallery-${name}`, name, 'aria-label': label },
    options.map(([value, text]) => h('option', { value }, text)));
  const workflow = select('workflow', 'Workflow', [['', 'any workflow']]);
  const model = select('model', 'Model', [['', 'any model']]);
  const lora = select('lora', 'LoRA', [['', 'any LoRA']]);
  const kind = select('kind', 'Kind', [['', 'images and videos'], ['image', 'images'], ['video', 'videos']]);
  const board = select('board', 'Board', [['', 'all items']]);
  const rating = select('rating', 'Rating', [['', 'any rating'], ['1', '★ or more'], ['3', '★★★ or more'], ['5', '★★★★★']]);
  const sort = select('sort', 'Sort', [['newest', 'newest first'], ['oldest', 'oldest first'], ['rating', 'best rated']]);
  const since = h('input', { id: 'gallery-since', name: 'since', type: 'date', 'aria-label': 'From' });
  const until = h('input', { id: 'gallery-until', name: 'until', type: 'date', 'aria-label': 'Until' });
  const starred = h('input', { type: 'checkbox', id: 'gallery-starred' });
  const boardName = h('input', { id: 'gallery-board-name', type: 'text', placeholder: 'New board', 'aria-label': 'New board name', maxlength: 80 });
  const selection = h('div', { class: 'selection-bar', id: 'gallery-selection', hidden: true, role: 'toolbar', 'aria-label': 'Selected items' });
  /** @type {Map<number, any>} */
  const entries = new Map();
  /** @type {Set<number>} */
  const selected = new Set();
  /** @type {string | null} */
  let next = null;
  let loading = 0;
  /** @type {{close: () => void} | null} */
  let box = null;
  /** @type {any[]} */
  let boards = [];

  const value = (/** @type {HTMLElement} */ el) => /** @type {HTMLInputElement} */ (el).value;
  const day = (/** @type {string} */ d, /** @type {number} */ add) => { const t = new Date(`${d}T00:00:00`); t.setDate(t.getDate() + add); return t.toISOString(); };

  function query() {
    const params = new URLSearchParams({ limit: String(PAGE), sort: value(sort) });
    for (const [name, el] of /** @type {[string, HTMLElement][]} */ ([['q', text], ['workflow', workflow], ['model', model], ['lora', lora], ['kind', kind], ['board', board], ['rating', rating]])) {
      if (value(el).trim()) params.set(name, value(el).trim());
    }
    if (value(since)) params.set('since', day(value(since), 0));
    if (value(until)) params.set('until', day(value(until), 1));
    if (/** @type {HTMLInputElement} */ (starred).checked) params.set('starred', 'true');
    return params;
  }

  const filtered = () => [...query().keys()].some((k) => !['limit', 'sort'].includes(k));

  /** @param {any} item */
  function tile(item) {
    entries.set(item.id, item);
    const label = snippet(item.prompt, 80) || item.filename;
    const ratio = ratioOf(item);
    const picture = item.thumbs
      ? h('img', { src: item.thumbs['256'], srcset: `${item.thumbs['256']} 256w, ${item.thumbs['768']} 768w`,
        sizes: `${Math.round(ROW * ratio * 1.5)}px`, alt: label, loading: 'lazy', decoding: 'async' })
      : h('span', { class: 'tile-icon', 'aria-hidden': 'true' }, item.kind === 'video' ? '▶' : '▤');
    const check = h('input', { type: 'checkbox', class: 'tile-select', 'aria-label': `Select ${label}`, checked: selected.has(item.id) || null });
    check.addEventListener('change', () => {
      if (/** @type {HTMLInputElement} */ (check).checked) selected.add(item.id); else selected.delete(item.id);
      figure.classList.toggle('selected', selected.has(item.id));
      renderSelection();
    });
    const figure = h('figure', { class: `gallery-tile${item.starred ? ' starred' : ''}`, 'data-id': item.id,
      style: { flexGrow: String(ratio), flexBasis: `${Math.round(ROW * ratio)}px` } },
      h('button', { type: 'button', class: 'tile-open', 'aria-label': `Open ${label}`, style: { aspectRatio: String(ratio) },
        onclick: () => open(item.id) }, picture),
      check,
      item.starred ? h('span', { class: 'tile-star', title: 'Starred' }, '★') : null,
      h('figcaption', { class: 'gallery-caption' }, snippet(item.prompt, 70) || item.filename));
    return figure;
  }

  /** @param {number} id */
  function open(id) {
    const order = [...grid.querySelectorAll('.gallery-tile')].map((el) => Number(/** @type {HTMLElement} */ (el).dataset.id));
    box = openGalleryBox(order.map((i) => entries.get(i)).filter(Boolean), Math.max(0, order.indexOf(id)), {
      onClose: () => { box = null; },
      onChange: ({ type, item }) => {
        if (type === 'deleted') { removeTile(item.id); return; }
        grid.querySelector(`[data-id="${item.id}"]`)?.replaceWith(tile(item));
      },
    });
  }

  /** @param {number} id */
  function removeTile(id) {
    grid.querySelector(`[data-id="${id}"]`)?.remove();
    entries.delete(id);
    selected.delete(id);
    renderSelection();
  }

  function renderSelection() {
    selection.hidden = selected.size === 0;
    if (!selected.size) { replace(selection); return; }
    const ids = [...selected];
    let armed = false;
    const remove = h('button', { type: 'button', class: 'link-button danger', 'data-action': 'delete-selected', onclick: () => {
      if (!armed) { armed = true; remove.textContent = `Really delete ${selected.size}?`; return; }
      bulkDelete();
    } }, 'Delete');
    const onBoard = h('select', { 'aria-label': 'Put on board', id: 'gallery-put-board' }, h('option', { value: '' }, 'Put on board…'),
      boards.map((b) => h('option', { value: b.id }, b.name)));
    onBoard.addEventListener('change', async () => {
      if (!value(onBoard)) return;
      try { await api.post(`/api/gallery/boards/${value(onBoard)}/items`, { ids }); toast('Put on the board.', 'success'); loadFacets(); } catch (err) { toast(message(err), 'error'); }
    });
    replace(selection, h('span', null, `${selected.size} selected`),
      h('button', { type: 'button', class: 'link-button', 'data-action': 'star-selected', onclick: () => bulkStar(!ids.every((i) => entries.get(i)?.starred)) }, 'Star'),
      boards.length ? onBoard : null,
      ids.length === 2 ? h('button', { type: 'button', class: 'link-button', 'data-action': 'compare-selected',
        onclick: () => openCompare(entries.get(ids[0]), entries.get(ids[1])) }, 'Compare') : null,
      ids.length <= 200 ? h('a', { class: 'link-button', href: `/api/gallery/zip?ids=${ids.join(',')}`, download: '', 'data-action': 'zip-selected' }, 'Download ZIP') : null,
      remove,
      h('button', { type: 'button', class: 'link-button', onclick: () => { selected.clear(); load(false, true); } }, 'Clear'));
  }

  /** @param {boolean} on */
  async function bulkStar(on) {
    try {
      for (const id of selected) {
        const fresh = await api.patch(`/api/gallery/items/${id}`, { starred: on });
        grid.querySelector(`[data-id="${id}"]`)?.replaceWith(tile(fresh));
      }
    } catch (err) { toast(message(err), 'error'); }
    renderSelection();
  }

  async function bulkDelete() {
    try {
      const ids = [...selected];
      await api.post('/api/gallery/delete', { ids });
      ids.forEach(removeTile);
      toast('Deleted.', 'success');
    } catch (err) { toast(message(err), 'error'); }
  }

  /** @param {boolean} append @param {boolean} [keepSelection] */
  async function load(append, keepSelection = false) {
    const params = query();
    if (append) { if (!next) return; params.set('cursor', next); }
    const ticket = ++loading;
    status.textContent = 'Loading…';
    try {
      const page = await api.get(`/api/gallery?${params}`);
      if (ticket !== loading) return;
      if (!append) { entries.clear(); if (!keepSelection) selected.clear(); renderSelection(); }
      const tiles = page.items.map(tile);
      if (append) grid.append(...tiles);
      else replace(grid, tiles);
      next = page.next;
      more.hidden = !next;
      status.textContent = entries.size ? '' : (filtered() ? 'Nothing matches these filters.' : 'Nothing here yet: results appear as jobs finish.');
    } catch (err) {
      if (ticket === loading) status.textContent = message(err);
    }
  }

  async function loadFacets() {
    try {
      const facets = await api.get('/api/gallery/facets');
      boards = facets.boards;
      /** @param {HTMLElement} el @param {[string, string][]} options */
      const fill = (el, options) => {
        const keep = value(el);
        replace(el, el.firstElementChild, options.map(([v, t]) => h('option', { value: v, selected: v === keep || null }, t)));
      };
      fill(workflow, facets.workflows.map((/** @type {any} */ w) => [w.id, w.name]));
      fill(model, facets.models.map((/** @type {string} */ m) => [m, m]));
      fill(lora, facets.loras.map((/** @type {string} */ l) => [l, l]));
      fill(board, boards.map((b) => [String(b.id), `${b.name} (${b.count})`]));
      renderSelection();
    } catch { /* the grid works without the filter lists */ }
  }

  async function makeBoard() {
    const name = value(boardName).trim();
    if (!name) return;
    try {
      await api.post('/api/gallery/boards', { name });
      /** @type {HTMLInputElement} */ (boardName).value = '';
      toast(`Board ${name} made.`, 'success');
      loadFacets();
    } catch (err) { toast(message(err), 'error'); }
  }

  /** New items made while the page is open go first, when no filter could hide them. @param {any} change */
  async function changed(change) {
    if (change.change === 'deleted') { (change.ids || []).forEach(removeTile); return; }
    if (filtered() || value(sort) !== 'newest') { status.textContent = 'New items were added: change a filter to see them.'; return; }
    for (const id of change.ids || []) {
      if (entries.has(id)) continue;
      try { grid.prepend(tile(await api.get(`/api/gallery/items/${id}`))); status.textContent = ''; } catch { /* deleted meanwhile */ }
    }
  }

  let timer = 0;
  for (const field of [workflow, model, lora, kind, board, rating, sort, since, until, starred]) field.addEventListener('change', () => load(false));
  text.addEventListener('input', () => { clearTimeout(timer); timer = window.setTimeout(() => load(false), 250); });
  more.addEventListener('click', () => load(true));
  boardName.addEventListener('keydown', (event) => { if (/** @type {KeyboardEvent} */ (event).key === 'Enter') makeBoard(); });
  const observer = new IntersectionObserver((seen) => { if (seen.some((e) => e.isIntersecting) && next) load(true); }, { rootMargin: '600px' });
  observer.observe(sentinel);
  const stops = [live.on('gallery/changed', changed)];
  replace(main, h('h1', null, 'Gallery'),
    h('div', { class: 'row filters gallery-filters' }, text, workflow, model, lora, kind, board, rating, sort,
      nsfwControl(() => load(false)),
      h('label', { class: 'check', for: 'gallery-since' }, 'From ', since), h('label', { class: 'check', for: 'gallery-until' }, 'until ', until),
      h('label', { class: 'check', for: 'gallery-starred' }, starred, ' Starred only'),
      h('span', { class: 'gallery-new-board' }, boardName, h('button', { type: 'button', class: 'link-button', onclick: makeBoard }, 'Make board'))),
    selection, status, grid, sentinel, h('div', { class: 'row' }, more));
  loadFacets();
  load(false);
  return () => { stops.forEach((stop) => stop()); observer.disconnect(); box?.close(); };
}
