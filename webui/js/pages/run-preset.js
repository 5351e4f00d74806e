// @ts-check
/**
 * "Save as preset" on the Run page: the form's values as they are, a name, who may see it, and
 * which values a runner may change. Prompts keep their `[[Question:a|b]]` questions as written.
 */
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';

/** Types a runner can sensibly set from a phone or a script. */
const CHANGEABLE = new Set(['text', 'int', 'float', 'boolean', 'select', 'image', 'resolution_picker', 'checkpoint_picker']);

/**
 * @param {string} workflowId
 * @param {any[]} inputs the form's visible inputs
 * @param {() => Record<string, any>} values the form's current values
 * @param {string} [workflowName]
 */
export function savePreset(workflowId, inputs, values, workflowName = '') {
  const panel = h('div', { class: 'preset-save', hidden: true, id: 'save-preset-panel' });
  const button = h('button', { type: 'button', class: 'link-button small', id: 'save-preset', 'aria-expanded': 'false',
    onclick: () => (panel.hidden ? open() : close()) }, 'Save as preset');

  function close() {
    panel.hidden = true;
    button.setAttribute('aria-expanded', 'false');
  }

  function open() {
    panel.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    const errorLine = h('p', { class: 'error-line', role: 'alert' });
    const name = /** @type {HTMLInputElement} */ (h('input', { id: 'preset-name', maxlength: 120, required: true,
      value: workflowName ? `${workflowName} preset` : 'My preset' }));
    const priv = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'preset-private' }));
    const changeable = inputs.filter((spec) => CHANGEABLE.has(spec.type));
    const boxes = changeable.map((spec) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', value: spec.id, 'data-overridable': spec.id,
        checked: spec.type === 'text' && /prompt/i.test(`${spec.id} ${spec.name}`) && !/negative/i.test(spec.id) }), ` ${spec.name}`));
    const save = h('button', { type: 'button', class: 'button secondary', id: 'save-preset-confirm', onclick: async () => {
      errorLine.textContent = '';
      const overridable = boxes.map((box) => /** @type {HTMLInputElement} */ (box.querySelector('input')))
        .filter((box) => box.checked).map((box) => box.value);
      const params = values();
      const seedSpec = inputs.find((spec) => spec.type === 'seed');
      try {
        const made = await api.post('/api/presets', { name: name.value.trim(), workflow_id: workflowId, params,
          private: priv.checked, overridable,
          seed_policy: seedSpec && params[seedSpec.id] !== -1 && params[seedSpec.id] !== null ? 'fixed' : 'random' });
        toast(`Saved as preset “${made.name}”.`, 'success');
        replace(panel, h('p', { class: 'small', role: 'status' }, `Saved “${made.name}”. `,
          h('a', { href: '/presets', 'data-link': true }, 'Open Presets')));
      } catch (err) { errorLine.textContent = message(err); }
    } }, 'Save preset');
    replace(panel,
      h('div', { class: 'field' }, h('label', { for: 'preset-name' }, 'Preset name'), name),
      h('label', { class: 'check' }, priv, ' Private: only I and the admins see it'),
      changeable.length ? h('fieldset', { class: 'field' }, h('legend', { class: 'small' }, 'A runner may change'),
        h('div', { class: 'overridable' }, boxes)) : null,
      h('p', { class: 'muted small' }, 'Tip: write [[Style:anime|photo]] or [[Subject]] in a prompt and the preset asks it each run.'),
      errorLine,
      h('div', { class: 'row' }, save, h('button', { type: 'button', class: 'link-button', onclick: close }, 'Cancel')));
    name.focus();
    name.select();
  }

  return { button, panel };
}
