// @ts-check
/**
 * One result at full size, with what it was made with and what to do next. Used by History and Run:
 * `openLightbox(items, startIndex, { onClose, onChange })`, an item being `{ job, output }` as the
 * jobs API gives them. ← → move, Esc closes, a swipe moves on a touch screen, a click (or the wheel)
 * zooms to 100 %. Focus stays inside while it is open and goes back where it was when it closes.
 */
import { api } from './api.js';
import { h, replace } from './dom.js';
import { live } from './live.js';
import { toast } from './toast.js';
import { message } from './jobs.js';
import { showModal, trapFocus } from './modal.js';

/** @typedef {{ job: any, output: any }} Item */
/** @typedef {{ type: 'queued' | 'deleted' | 'starred' | 'made', job?: any, jobs?: any[], output?: any }} Change */

/** @type {Promise<any[]> | null} */
let imageWorkflows = null;

/** Workflows whose form takes an image: where "use as input" can send a result (asked once per page load). */
export function workflowsTakingAnImage() {
  imageWorkflows ??= api.get('/api/workflows').then(async ({ items }) => {
    const found = await Promise.all(items.map((/** @type {any} */ w) => api.get(`/api/workflows/${encodeURIComponent(w.id)}`)
      .then((full) => {
        const spec = (full.manifest?.inputs || []).find((/** @type {any} */ i) => i.type === 'image');
        return spec ? { ...w, input: spec.id } : null;  // the workflow, and which of its inputs takes the image
      }).catch(() => null)));
    return found.filter(Boolean).sort((a, b) => Number(b.category === 'i2i') - Number(a.category === 'i2i'));
  }).catch((err) => { imageWorkflows = null; throw err; });
  return imageWorkflows;
}

/** @param {string} href Navigates inside the app (app.js routes on popstate). */
export function go(href) {
  history.pushState(null, '', href);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

/** @param {number | null | undefined} seconds */
function took(seconds) {
  if (seconds === null || seconds === undefined) return null;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** @param {any} job @param {any} output */
function sizeOf(job, output) {
  const width = output.width ?? job.summary?.width;
  const height = output.height ?? job.summary?.height;
  return width && height ? `${width} × ${height}` : null;
}

/**
 * @param {Item[]} start
 * @param {number} startIndex
 * @param {{ onClose?: () => void, onChange?: (change: Change) => void }} [options]
 * @returns {{ close: () => void }}
 */
export function openLightbox(start, startIndex, options = {}) {
  const items = [...start];
  let index = Math.max(0, Math.min(startIndex, items.length - 1));
  /** @type {(() => void)[]} */
  const stops = [];
  let zoomed = false;

  const stage = h('div', { class: 'lightbox-stage' });
  const counter = h('p', { class: 'lightbox-counter muted small', 'aria-live': 'polite' });
  const facts = h('dl', { class: 'facts lightbox-facts' });
  const note = h('p', { class: 'lightbox-note small', role: 'status' });
  const actions = h('div', { class: 'lightbox-actions' });
  const prev = h('button', { class: 'lightbox-nav lightbox-prev', type: 'button', 'aria-label': 'Previous result', onclick: () => move(-1) }, '‹');
  const next = h('button', { class: 'lightbox-nav lightbox-next', type: 'button', 'aria-label': 'Next result', onclick: () => move(1) }, '›');
  const closer = h('button', { class: 'lightbox-close', type: 'button', 'aria-label': 'Close', onclick: () => close() }, '×');
  const title = h('h2', { id: 'lightbox-title', class: 'lightbox-title' });
  const dialog = h('div', { class: 'lightbox', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'lightbox-title' },
    h('div', { class: 'lightbox-view' }, stage, prev, next),
    h('aside', { class: 'lightbox-panel' }, h('div', { class: 'lightbox-head' }, title, closer), counter, facts, note, actions));

  function current() { return items[index]; }

  /** @param {number} step */
  function move(step) {
    if (items.length < 2) return;
    index = (index + step + items.length) % items.length;
    render();
  }

  function setZoom(/** @type {boolean} */ on) {
    zoomed = on && current().output.kind !== 'video';
    stage.classList.toggle('zoomed', zoomed);
    const toggle = actions.querySelector('[data-action=zoom]');
    if (toggle) toggle.textContent = zoomed ? 'Fit to screen' : 'Zoom to 100 %';
  }

  function media() {
    const { job, output } = current();
    const label = job.summary?.prompt || output.filename;
    if (output.kind === 'video') {
      return h('video', { src: output.url, controls: true, autoplay: true, muted: true, loop: true, playsinline: true, 'aria-label': label });
    }
    if (output.kind === 'audio') return h('audio', { src: output.url, controls: true, 'aria-label': label });
    if (output.kind === 'image' || output.kind === 'gif') {
      return h('img', { src: output.url, alt: label, class: 'lightbox-image', draggable: 'false',
        onclick: () => setZoom(!zoomed) });
    }
    return h('a', { href: output.url, download: output.filename, class: 'link-button' }, output.filename);
  }

  function render() {
    const { job, output } = current();
    zoomed = false;
    stage.classList.remove('zoomed');
    replace(stage, media());
    const summary = job.summary || {};
    title.textContent = job.workflow_name || 'Result';
    counter.textContent = items.length > 1 ? `${index + 1} of ${items.length}` : '';
    prev.hidden = next.hidden = items.length < 2;
    /** @type {[string, any][]} */
    const rows = [
      ['Prompt', summary.prompt], ['Negative', summary.negative], ['Seed', summary.seed],
      ['Size', sizeOf(job, output)], ['Model', summary.model],
      ['LoRAs', (summary.loras || []).map((/** @type {any} */ l) => (l.strength === null || l.strength === undefined
        ? l.name : `${l.name} (${l.strength})`)).join(', ') || null],
      ['Time taken', took(summary.seconds)],
    ];
    replace(facts, rows.filter(([, value]) => value !== null && value !== undefined && value !== '')
      .map(([name, value]) => [h('dt', null, name), h('dd', { 'data-fact': name.toLowerCase() }, String(value))]));
    note.textContent = '';
    renderActions();
  }

  function renderActions() {
    const { job, output } = current();
    const position = job.outputs ? job.outputs.findIndex((/** @type {any} */ o) => o.id === output.id) : 0;
    const count = h('input', { type: 'number', min: 2, max: 8, value: 4, id: 'lightbox-count', class: 'lightbox-count', 'aria-label': 'How many variations' });
    let armed = false;
    const remove = h('button', { type: 'button', class: 'link-button danger', 'data-action': 'delete', onclick: async () => {
      if (!armed) { armed = true; remove.textContent = 'Really delete?'; return; }
      await removeCurrent();
    } }, 'Delete');
    replace(actions,
      h('div', { class: 'lightbox-row' },
        h('button', { type: 'button', class: 'button', 'data-action': 'new-seed', onclick: () => again(1) }, 'New seed'),
        h('span', { class: 'lightbox-variations' }, count,
          h('button', { type: 'button', class: 'button secondary', 'data-action': 'variations',
            onclick: () => again(Math.max(2, Math.min(8, Number(/** @type {HTMLInputElement} */ (count).value) || 4))) }, 'Variations'))),
      h('div', { class: 'lightbox-row' },
        h('a', { class: 'link-button', href: output.url, download: output.filename, 'data-action': 'download' }, 'Download'),
        h('a', { class: 'link-button', href: `/run/${encodeURIComponent(job.workflow_id)}?from_job=${job.id}`, 'data-link': true,
          'data-action': 'reuse', onclick: () => close() }, 'Reuse parameters'),
        output.kind === 'image' ? h('button', { type: 'button', class: 'link-button', 'data-action': 'use-as-input',
          onclick: () => useAsInput(job, Math.max(0, position)) }, 'Use as input') : null,
        output.kind !== 'video' && output.kind !== 'audio' ? h('button', { type: 'button', class: 'link-button', 'data-action': 'zoom',
          onclick: () => setZoom(!zoomed) }, 'Zoom to 100 %') : null,
        h('a', { class: 'link-button', href: `/job/${job.id}`, 'data-link': true, 'data-action': 'open-job', onclick: () => close() }, 'Open job'),
        remove));
  }

  /** @param {any} job @param {number} position */
  async function useAsInput(job, position) {
    note.textContent = 'Finding workflows that take an image…';
    try {
      const found = await workflowsTakingAnImage();
      if (!found.length) { note.textContent = 'No workflow here takes an image.'; return; }
      const target = (/** @type {any} */ w) => `/run/${encodeURIComponent(w.id)}?input=${job.id}:${position}`;
      if (found.length === 1) { close(); go(target(found[0])); return; }
      replace(note, 'Use it in: ', found.map((/** @type {any} */ w) => h('a', { class: 'link-button', href: target(w), 'data-link': true,
        onclick: () => close() }, w.name)));
    } catch (err) {
      note.textContent = message(err);
    }
  }

  /** @param {number} count */
  async function again(count) {
    const { job } = current();
    note.textContent = count === 1 ? 'Queuing with a new seed…' : `Queuing ${count} variations…`;
    try {
      const { items: queued } = await api.post(`/api/jobs/${job.id}/again`, { seed: 'new', count });
      options.onChange?.({ type: 'queued', jobs: queued });
      const waiting = new Set(queued.map((/** @type {any} */ j) => j.id));
      let ready = 0;
      note.textContent = count === 1 ? `Making it again with seed ${queued[0].params?.seed ?? 'new'}…`
        : `${count} variations queued: they appear here as they finish.`;
      const stop = live.on('jobs/update', async (update) => {
        if (!waiting.has(update.id) || !['completed', 'failed', 'cancelled', 'interrupted'].includes(update.status)) return;
        waiting.delete(update.id);
        if (!waiting.size) stop();
        if (update.status !== 'completed') { note.textContent = `A new try ended ${update.status}${update.error?.message ? `: ${update.error.message}` : '.'}`; return; }
        try {
          const made = await api.get(`/api/jobs/${update.id}`);
          const fresh = (made.outputs || []).map((/** @type {any} */ output) => ({ job: made, output }));
          if (!dialog.isConnected || !fresh.length) return;
          const at = index + 1;
          items.splice(at, 0, ...fresh);
          ready += 1;
          options.onChange?.({ type: 'made', job: made });
          if (count === 1) { index = at; render(); note.textContent = `New seed: ${made.summary?.seed ?? ''}`; } else {
            counter.textContent = `${index + 1} of ${items.length}`;
            prev.hidden = next.hidden = false;
            note.textContent = `${ready} of ${count} variations ready: → to see them.`;
          }
        } catch (err) {
          note.textContent = message(err);
        }
      });
      stops.push(stop);
    } catch (err) {
      note.textContent = message(err);
      toast(message(err), 'error');
    }
  }

  async function removeCurrent() {
    const { job, output } = current();
    const only = (job.outputs || []).length <= 1;
    try {
      await api.del(only ? `/api/jobs/${job.id}` : `/api/jobs/${job.id}/outputs/${output.id}`);
    } catch (err) {
      note.textContent = message(err);
      return;
    }
    items.splice(index, 1);
    job.outputs = (job.outputs || []).filter((/** @type {any} */ o) => o.id !== output.id);
    options.onChange?.({ type: 'deleted', job, output });
    toast('Deleted.', 'success');
    if (!items.length) { close(); return; }
    index %= items.length;
    render();
  }

  /** @param {KeyboardEvent} event */
  function onKey(event) {
    if (event.key === 'Escape') { event.preventDefault(); if (zoomed) setZoom(false); else close(); return; }
    const typing = /** @type {HTMLElement} */ (event.target).closest('input, textarea, select');
    if (event.key === 'ArrowLeft' && !typing) { event.preventDefault(); move(-1); }
    if (event.key === 'ArrowRight' && !typing) { event.preventDefault(); move(1); }
    if (event.key === 'Tab') trapFocus(event, dialog);
  }

  let touchX = 0;
  let touchY = 0;
  stage.addEventListener('touchstart', (event) => { touchX = event.touches[0].clientX; touchY = event.touches[0].clientY; }, { passive: true });
  stage.addEventListener('touchend', (event) => {
    if (zoomed) return;
    const dx = event.changedTouches[0].clientX - touchX;
    const dy = event.changedTouches[0].clientY - touchY;
    if (Math.abs(dx) > 40 && Math.abs(dx) > Math.abs(dy) * 1.5) move(dx < 0 ? 1 : -1);
  });
  stage.addEventListener('wheel', (event) => {
    if (current().output.kind === 'video' || (zoomed && event.deltaY < 0) || (!zoomed && event.deltaY > 0)) return;
    event.preventDefault();
    setZoom(event.deltaY < 0);
  }, { passive: false });

  const close = showModal(dialog, { onKey, onClose: options.onClose, cleanups: stops });
  render();
  closer.focus();
  return { close };
}
