// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';

/**
 * The mapping editor: rename, hide, reorder, group as advanced, set defaults and limits.
 * Saving writes the workflow's manifest; ids stay, so a re-import keeps these choices.
 * @param {string} workflowId
 * @param {{onSaved: () => void, onClose: () => void}} hooks
 */
export async function mappingEditor(workflowId, hooks) {
  const wf = await api.get(`/api/workflows/${workflowId}`);
  const rows = h('tbody');
  const errorLine = h('p', { class: 'error-line', role: 'alert' });

  /** @param {any} spec */
  function row(spec) {
    const numeric = ['int', 'float'].includes(spec.type);
    // Each cell names itself (data-label): a phone shows the rows as cards, with no header row to look up to.
    const tr = h('tr', { 'data-param': spec.id },
      h('td', { 'data-label': 'Parameter' }, h('input', { class: 'map-name', value: spec.name, 'aria-label': `Name of ${spec.id}` }),
        h('div', { class: 'muted small' }, `${spec.id} · ${spec.type} · node ${spec.node_id ?? '–'} ${spec.field ?? ''}`)),
      h('td', { 'data-label': 'Default' }, h('input', { class: 'map-default', value: spec.default === undefined || spec.default === null ? ''
        : (typeof spec.default === 'string' ? spec.default : JSON.stringify(spec.default)), 'aria-label': `Default of ${spec.id}` })),
      numeric ? h('td', { 'data-label': 'Limits', class: 'map-limits' }, h('div', { class: 'row' },
        h('input', { class: 'map-min', type: 'number', step: 'any', value: spec.min ?? '', placeholder: 'min', 'aria-label': `Minimum of ${spec.id}` }),
        h('input', { class: 'map-max', type: 'number', step: 'any', value: spec.max ?? '', placeholder: 'max', 'aria-label': `Maximum of ${spec.id}` })))
        : h('td', { class: 'map-limits empty' }),
      h('td', { 'data-label': 'Advanced', class: 'map-flag' },
        h('input', { class: 'map-advanced', type: 'checkbox', checked: Boolean(spec.advanced), 'aria-label': `${spec.id} is advanced` })),
      h('td', { 'data-label': 'Hidden', class: 'map-flag' },
        h('input', { class: 'map-hidden', type: 'checkbox', checked: Boolean(spec.hidden), 'aria-label': `Hide ${spec.id}` })),
      h('td', { class: 'map-order' }, h('div', { class: 'row' },
        h('button', { type: 'button', class: 'link-button', 'aria-label': 'Move up', onclick: () => tr.previousElementSibling?.before(tr) }, '↑'),
        h('button', { type: 'button', class: 'link-button', 'aria-label': 'Move down', onclick: () => tr.nextElementSibling?.after(tr) }, '↓'))));
    tr.dataset.type = spec.type;
    return tr;
  }

  /** @param {string} text @param {string} type */
  function parseDefault(text, type) {
    if (text === '') return null;
    if (['int', 'float', 'seed'].includes(type)) return Number(text);
    if (type === 'text' || type === 'image' || type.endsWith('picker') || type === 'select') {
      if (type === 'select' || type.endsWith('picker')) { try { return JSON.parse(text); } catch { return text; } }
      return text;
    }
    try { return JSON.parse(text); } catch { return text; }
  }

  async function save() {
    errorLine.textContent = '';
    const inputs = [...rows.querySelectorAll('tr')].map((tr) => {
      const el = (/** @type {string} */ selector) => /** @type {HTMLInputElement | null} */ (tr.querySelector(selector));
      /** @type {Record<string, any>} */
      const entry = { id: tr.getAttribute('data-param'), name: el('.map-name')?.value,
        advanced: el('.map-advanced')?.checked, hidden: el('.map-hidden')?.checked,
        default: parseDefault(el('.map-default')?.value ?? '', tr.dataset.type || 'text') };
      const min = el('.map-min')?.value; const max = el('.map-max')?.value;
      if (min) entry.min = Number(min);
      if (max) entry.max = Number(max);
      return entry;
    });
    try {
      await api.put(`/api/workflows/${workflowId}/mapping`, { inputs });
      toast('Form saved.', 'success');
      hooks.onSaved();
    } catch (err) {
      errorLine.textContent = err instanceof ApiError ? err.message : message(err);
    }
  }

  rows.append(...wf.manifest.inputs.map(row));
  return h('section', { class: 'card', id: 'mapping-editor' },
    h('h2', null, `Form of “${wf.name}”`),
    h('p', { class: 'muted' }, 'Rename, reorder, hide or group parameters as advanced, and set defaults and limits.'),
    h('div', { class: 'table-scroll' }, h('table', { class: 'list mapping' },
      h('thead', null, h('tr', null, h('th', null, 'Parameter'), h('th', null, 'Default'), h('th', null, 'Limits'),
        h('th', null, 'Advanced'), h('th', null, 'Hidden'), h('th', null, 'Order'))),
      rows)),
    errorLine,
    h('div', { class: 'actions' }, h('button', { class: 'button', id: 'save-mapping', onclick: save }, 'Save form'),
      h('a', { class: 'link-button', href: `/run?workflow=${workflowId}`, 'data-link': true }, 'Try it in Run'),
      h('button', { class: 'link-button', onclick: hooks.onClose }, 'Close')));
}
