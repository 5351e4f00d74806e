// @ts-check
/**
 * Compare two gallery items: side by side, or one over the other with a slider that uncovers the
 * second (← → move it when it has focus), and the parameters that differ listed (prompt, negative
 * prompt, model, seed, LoRAs, size, every setting), the ones they share counted. Opened from the
 * Gallery's selection bar with exactly two chosen. Esc closes; focus stays inside while open.
 * `openCompare(left, right, { onClose })`.
 */
import { h, replace } from '../lib/dom.js';
import { showModal, trapFocus } from '../lib/modal.js';

/** A value as one line: LoRAs as "name × strength", objects as JSON. @param {any} value */
function shown(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (Array.isArray(value)) {
    return value.length ? value.map((v) => (v && typeof v === 'object' && 'name' in v ? `${v.name} × ${v.strength ?? 1}` : shown(v))).join(', ') : '—';
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** Every parameter of both items, in a stable order: what each was made with. @param {any} item */
function facts(item) {
  /** @type {[string, any][]} */
  const rows = [['Prompt', item.prompt], ['Negative prompt', item.negative], ['Model', item.model], ['Seed', item.seed],
    ['LoRAs', item.loras], ['Size', item.width && item.height ? `${item.width}×${item.height}` : null],
    ['Workflow', item.workflow_name || item.workflow_id], ['Source', item.source]];
  for (const [key, value] of Object.entries(item.params || {})) {
    if (!/prompt|seed|checkpoint|^model$/i.test(key)) rows.push([key, value]);
  }
  return rows;
}

/** The parameters that differ ([name, left, right]) and how many are the same. @param {any} left @param {any} right */
export function differences(left, right) {
  const a = new Map(facts(left));
  const b = new Map(facts(right));
  const names = [...new Set([...a.keys(), ...b.keys()])];
  const differ = names.filter((n) => shown(a.get(n)) !== shown(b.get(n))).map((n) => [n, shown(a.get(n)), shown(b.get(n))]);
  return { differ, same: names.length - differ.length };
}

/** @param {any} item */
function picture(item) {
  const src = item.thumbs?.['768'] || item.url;
  return item.kind === 'video' && !item.thumbs
    ? h('video', { src: item.url, muted: true, playsinline: true, preload: 'metadata' })
    : h('img', { src, alt: (item.prompt || item.filename || '').slice(0, 120), decoding: 'async', draggable: 'false' });
}

/**
 * @param {any} left @param {any} right
 * @param {{ onClose?: () => void }} [options]
 */
export function openCompare(left, right, options = {}) {
  const stage = h('div', { class: 'compare-stage', id: 'compare-stage' });
  let mode = 'side';
  const slider = /** @type {HTMLInputElement} */ (h('input', { type: 'range', min: 0, max: 100, value: 50, id: 'compare-slider',
    'aria-label': 'Uncover the second image' }));
  const modes = h('div', { class: 'row compare-modes', role: 'group', 'aria-label': 'How to compare' },
    [['side', 'Side by side'], ['slider', 'Slider']].map(([value, text]) => h('button', { type: 'button', class: 'link-button',
      'data-mode': value, 'aria-pressed': String(value === mode), onclick: () => { mode = value; render(); } }, text)));
  const { differ, same } = differences(left, right);
  const table = differ.length
    ? h('table', { class: 'list compare-table', id: 'compare-differences' },
      h('thead', null, h('tr', null, h('th', null, 'Parameter'), h('th', null, 'Left'), h('th', null, 'Right'))),
      h('tbody', null, differ.map(([name, a, b]) => h('tr', { 'data-param': name }, h('th', { scope: 'row' }, name),
        h('td', null, a), h('td', null, b)))))
    : h('p', { id: 'compare-differences' }, 'They were made with the same parameters.');
  const closer = h('button', { class: 'lightbox-close', type: 'button', 'aria-label': 'Close', onclick: () => close() }, '×');
  const dialog = h('div', { class: 'lightbox compare-box', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'compare-title' },
    h('div', { class: 'lightbox-view' }, stage),
    h('aside', { class: 'lightbox-panel' }, h('div', { class: 'lightbox-head' },
      h('h2', { id: 'compare-title', class: 'lightbox-title' }, 'Compare two images'), closer), modes,
    h('h3', { class: 'small' }, `${differ.length} parameter${differ.length === 1 ? '' : 's'} differ`), table,
    h('p', { class: 'muted small' }, `${same} the same.`)));

  function render() {
    modes.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.mode === mode)));
    stage.dataset.mode = mode;
    if (mode === 'side') {
      replace(stage, h('figure', { class: 'compare-side' }, picture(left), h('figcaption', null, 'Left')),
        h('figure', { class: 'compare-side' }, picture(right), h('figcaption', null, 'Right')));
      return;
    }
    const top = h('div', { class: 'compare-top' }, picture(right));
    const place = () => { top.style.clipPath = `inset(0 0 0 ${slider.value}%)`; };
    slider.oninput = place;
    place();
    replace(stage, h('div', { class: 'compare-overlay' }, h('div', { class: 'compare-under' }, picture(left)), top), slider);
    slider.focus();
  }

  /** @param {KeyboardEvent} event */
  function onKey(event) {
    if (event.key === 'Escape') { event.preventDefault(); close(); return; }
    if (event.key === 'Tab') trapFocus(event, dialog);
  }

  const close = showModal(dialog, { onKey, onClose: options.onClose });
  render();
  closer.focus();
  return { close };
}
