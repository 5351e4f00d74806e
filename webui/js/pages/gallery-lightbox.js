// @ts-check
/**
 * The Gallery's lightbox: one item at full size with everything it was made with, and what to do
 * with it (star, rate, tag, reuse its parameters, use it as an input, download, delete). It wears
 * History's lightbox styles (`lightbox-*` in results.css) but speaks the gallery's items, which are
 * not always a job's (files found in the output folder have no job to run again).
 * `openGalleryBox(items, index, { onChange, onClose })`: ← → move, Esc closes, focus stays inside.
 */
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { showModal, trapFocus } from '../lib/modal.js';
import { go, workflowsTakingAnImage } from '../lib/lightbox.js';
import { toast } from '../lib/toast.js';

/** @typedef {{ type: 'changed' | 'deleted', item: any }} Change */

/** @param {number} bytes */
function sizeText(bytes) {
  if (!bytes) return null;
  return bytes > 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

/** @param {any} params */
function settingsText(params) {
  if (!params || typeof params !== 'object') return null;
  // The prompts, model and seed have rows of their own above.
  const shown = Object.entries(params).filter(([k, v]) => v !== null && typeof v !== 'object' && String(v).length < 120
    && !/prompt|seed|checkpoint|^model$/i.test(k));
  return shown.length ? shown.map(([k, v]) => `${k}: ${v}`).join('\n') : null;
}

/**
 * @param {any[]} start
 * @param {number} startIndex
 * @param {{ onClose?: () => void, onChange?: (change: Change) => void }} [options]
 */
export function openGalleryBox(start, startIndex, options = {}) {
  const items = [...start];
  let index = Math.max(0, Math.min(startIndex, items.length - 1));
  const stage = h('div', { class: 'lightbox-stage' });
  const counter = h('p', { class: 'lightbox-counter muted small', 'aria-live': 'polite' });
  const facts = h('dl', { class: 'facts lightbox-facts' });
  const note = h('p', { class: 'lightbox-note small', role: 'status' });
  const actions = h('div', { class: 'lightbox-actions' });
  const prev = h('button', { class: 'lightbox-nav lightbox-prev', type: 'button', 'aria-label': 'Previous item', onclick: () => move(-1) }, '‹');
  const next = h('button', { class: 'lightbox-nav lightbox-next', type: 'button', 'aria-label': 'Next item', onclick: () => move(1) }, '›');
  const closer = h('button', { class: 'lightbox-close', type: 'button', 'aria-label': 'Close', onclick: () => close() }, '×');
  const title = h('h2', { id: 'gallery-box-title', class: 'lightbox-title' });
  const dialog = h('div', { class: 'lightbox gallery-box', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'gallery-box-title' },
    h('div', { class: 'lightbox-view' }, stage, prev, next),
    h('aside', { class: 'lightbox-panel' }, h('div', { class: 'lightbox-head' }, title, closer), counter, facts, note, actions));

  const current = () => items[index];

  /** @param {number} step */
  function move(step) {
    if (items.length < 2) return;
    index = (index + step + items.length) % items.length;
    render();
  }

  function media() {
    const item = current();
    const label = item.prompt || item.filename;
    if (item.kind === 'video') return h('video', { src: item.url, controls: true, autoplay: true, muted: true, loop: true, playsinline: true, 'aria-label': label });
    return h('img', { src: item.url, alt: label, class: 'lightbox-image', draggable: 'false' });
  }

  function render() {
    const item = current();
    replace(stage, media());
    title.textContent = item.workflow_name || item.filename;
    counter.textContent = items.length > 1 ? `${index + 1} of ${items.length}` : '';
    prev.hidden = next.hidden = items.length < 2;
    /** @type {[string, any][]} */
    const rows = [
      ['Prompt', item.prompt], ['Negative', item.negative], ['Model', item.model],
      ['LoRAs', (item.loras || []).map((/** @type {any} */ l) => (l.strength === null || l.strength === undefined ? l.name : `${l.name} (${l.strength})`)).join(', ') || null],
      ['Seed', item.seed], ['Size', item.width && item.height ? `${item.width} × ${item.height}` : null],
      ['File', `${item.filename}${sizeText(item.size) ? ` · ${sizeText(item.size)}` : ''}`],
      ['Made', new Date(item.created_at).toLocaleString()], ['Workflow', item.workflow_name],
      ['Tags', (item.tags || []).join(', ') || null], ['Settings', settingsText(item.params)],
      ['Found', item.source === 'disk' ? 'in the output folder (not made by a Studio job)' : null],
    ];
    replace(facts, rows.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([name, value]) => [h('dt', null, name), h('dd', { 'data-fact': name.toLowerCase() }, String(value))]));
    note.textContent = '';
    renderActions();
  }

  /** @param {Record<string, any>} change */
  async function save(change) {
    const item = current();
    try {
      const fresh = await api.patch(`/api/gallery/items/${item.id}`, change);
      Object.assign(item, fresh);
      options.onChange?.({ type: 'changed', item });
      render();
    } catch (err) {
      note.textContent = message(err);
    }
  }

  function renderActions() {
    const item = current();
    const stars = h('div', { class: 'rating', role: 'group', 'aria-label': 'Rating' }, [1, 2, 3, 4, 5].map((n) => h('button', {
      type: 'button', class: `rating-star${item.rating >= n ? ' on' : ''}`, 'aria-pressed': String(item.rating >= n),
      'aria-label': `${n} star${n > 1 ? 's' : ''}`, 'data-rating': n, onclick: () => save({ rating: item.rating === n ? 0 : n }) }, '★')));
    const tags = h('input', { type: 'text', id: 'gallery-tags', value: (item.tags || []).join(', '), placeholder: 'tags, comma separated', 'aria-label': 'Tags' });
    tags.addEventListener('change', () => save({ tags: /** @type {HTMLInputElement} */ (tags).value.split(',').map((t) => t.trim()).filter(Boolean) }));
    let armed = false;
    const remove = h('button', { type: 'button', class: 'link-button danger', 'data-action': 'delete', onclick: async () => {
      if (!armed) { armed = true; remove.textContent = 'Really delete?'; return; }
      await removeCurrent();
    } }, 'Delete');
    replace(actions,
      h('div', { class: 'lightbox-row' },
        h('button', { type: 'button', class: 'button secondary', 'data-action': 'star', 'aria-pressed': String(item.starred),
          onclick: () => save({ starred: !item.starred }) }, item.starred ? '★ Starred' : '☆ Star'), stars),
      h('div', { class: 'lightbox-row' }, tags),
      h('div', { class: 'lightbox-row' },
        item.reuse_url ? h('a', { class: 'link-button', href: item.reuse_url, 'data-link': true, 'data-action': 'reuse',
          onclick: () => close() }, 'Reuse parameters') : null,
        item.kind !== 'video' ? h('button', { type: 'button', class: 'link-button', 'data-action': 'use-as-input', onclick: useAsInput }, 'Use as input') : null,
        h('a', { class: 'link-button', href: item.url, download: item.filename, 'data-action': 'download' }, 'Download'),
        item.job_id && item.source === 'job' ? h('a', { class: 'link-button', href: `/job/${item.job_id}`, 'data-link': true, onclick: () => close() }, 'Open job') : null,
        remove));
  }

  async function useAsInput() {
    note.textContent = 'Copying it to the input images…';
    try {
      const [made, found] = await Promise.all([api.post(`/api/gallery/items/${current().id}/use-as-input`), workflowsTakingAnImage()]);
      if (!found.length) { note.textContent = 'No workflow here takes an image.'; return; }
      const target = (/** @type {any} */ w) => `/run/${encodeURIComponent(w.id)}?${new URLSearchParams({ [w.input]: made.name })}`;
      if (found.length === 1) { close(); go(target(found[0])); return; }
      replace(note, 'Use it in: ', found.map((/** @type {any} */ w) => h('a', { class: 'link-button', href: target(w), 'data-link': true, onclick: () => close() }, w.name)));
    } catch (err) {
      note.textContent = message(err);
    }
  }

  async function removeCurrent() {
    const item = current();
    try {
      await api.post('/api/gallery/delete', { ids: [item.id] });
    } catch (err) {
      note.textContent = message(err);
      return;
    }
    items.splice(index, 1);
    options.onChange?.({ type: 'deleted', item });
    toast('Deleted.', 'success');
    if (!items.length) { close(); return; }
    index %= items.length;
    render();
  }

  /** @param {KeyboardEvent} event */
  function onKey(event) {
    if (event.key === 'Escape') { event.preventDefault(); close(); return; }
    const typing = /** @type {HTMLElement} */ (event.target).closest('input, textarea, select');
    if (event.key === 'ArrowLeft' && !typing) { event.preventDefault(); move(-1); }
    if (event.key === 'ArrowRight' && !typing) { event.preventDefault(); move(1); }
    if (event.key === 'Tab') trapFocus(event, dialog);
  }

  const close = showModal(dialog, { onKey, onClose: options.onClose });
  render();
  closer.focus();
  return { close };
}
