// @ts-check
/**
 * Presets: saved ways to run a workflow. A card shows the owner's last result; Run asks the
 * preset's questions (a choice as buttons, free text as a field) and the values its owner lets a
 * runner change, then follows the job on the page. Edit, copy, export, schedule and delete are on
 * the card for those allowed to; import and export of many sit above the cards.
 */
import { api, ApiError, getCsrfToken } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { followJobs, jobCard, message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { collect, control } from './run-form.js';

/** @param {any} preset @returns {string} */
const runLink = (preset) => `/run/${encodeURIComponent(preset.workflow_id)}?preset=${encodeURIComponent(preset.id)}`;

/** @param {HTMLElement} main @param {{me?: any}} [ctx] */
export function mount(main, ctx = {}) {
  const list = h('div', { class: 'grid preset-grid', id: 'preset-list' });
  const problemsBox = h('div', { id: 'preset-problems' });
  const mine = h('div', { id: 'preset-jobs', class: 'job-list' });
  const jobsBox = h('section', { class: 'card run-jobs', hidden: true }, h('h2', null, 'Runs from this page'), mine);
  /** @type {Set<string>} */
  const session = new Set();
  const stops = [
    followJobs(mine, (job) => session.has(job.id)),
    live.on('presets/changed', () => load()),
  ];
  const importInput = /** @type {HTMLInputElement} */ (h('input', { type: 'file', id: 'preset-import-file',
    accept: '.json,.zip,application/json,application/zip', hidden: true, 'aria-label': 'Preset file to import',
    onchange: () => importFile() }));

  async function load() {
    try {
      const { items, problems } = await api.get('/api/presets');
      replace(list, items.length ? items.map(card) : h('section', { class: 'card empty' }, h('h2', null, 'No presets yet'),
        h('p', null, 'On the Run page, set up a workflow the way you like it and press “Save as preset”. ',
          'A prompt can ask a question each time it runs: write ', h('code', null, '[[Style:anime|photo]]'),
          ' for a choice or ', h('code', null, '[[Subject]]'), ' for free text.')));
      replace(problemsBox, problems.length ? h('section', { class: 'card' }, h('h2', null, 'Files that are not presets'),
        h('ul', null, problems.map((/** @type {any} */ p) => h('li', { 'data-preset-problem': p.file },
          h('span', { class: 'path' }, p.file), ` ${p.reason}`)))) : null);
    } catch (err) {
      replace(list, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** @param {any} preset */
  function card(preset) {
    const panel = h('div', { class: 'preset-panel' });
    const picture = preset.thumbnail
      ? h('img', { class: 'preset-thumb', src: preset.thumbnail, alt: `Last result of ${preset.name}`, loading: 'lazy' })
      : h('div', { class: 'preset-thumb empty', 'aria-hidden': 'true' }, preset.name.slice(0, 1).toUpperCase());
    const questions = preset.placeholders.length;
    return h('section', { class: 'card preset-card', 'data-preset': preset.id },
      picture,
      h('h2', null, preset.name),
      h('p', { class: 'muted small' }, preset.workflow_name || preset.workflow_id,
        preset.owner ? ` · by ${preset.owner}` : '', preset.private ? ' · ' : '',
        preset.private ? h('span', { class: 'badge' }, 'Private') : null),
      preset.description ? h('p', null, preset.description) : null,
      questions ? h('p', { class: 'muted small' }, `Asks ${questions} question${questions > 1 ? 's' : ''}`) : null,
      preset.runnable ? null : h('ul', { class: 'error-line preset-problems' },
        preset.problems.map((/** @type {string} */ p) => h('li', null, `Cannot run: ${p}`))),
      h('div', { class: 'actions' },
        h('button', { class: 'button', type: 'button', 'data-action': 'run-preset', disabled: !preset.runnable,
          onclick: () => openRun(preset, panel) }, 'Run'),
        h('a', { class: 'link-button', href: runLink(preset), 'data-link': true, 'data-action': 'open-in-run' }, 'Open in Run'),
        preset.can_edit ? h('button', { class: 'link-button', type: 'button', 'data-action': 'edit-preset',
          onclick: () => openEdit(preset, panel) }, 'Edit') : null,
        h('button', { class: 'link-button', type: 'button', 'data-action': 'duplicate-preset', onclick: () => duplicate(preset) }, 'Copy'),
        h('a', { class: 'link-button', href: `/api/presets/${encodeURIComponent(preset.id)}/export`, download: '' }, 'Export'),
        // Anyone who may run a preset may run it on a timer: a schedule's runs are its owner's.
        h('button', { class: 'link-button', type: 'button', 'data-action': 'schedule-preset',
          onclick: () => openSchedule(preset, panel) }, 'Schedule'),
        preset.can_edit ? h('button', { class: 'link-button danger-text', type: 'button', 'data-action': 'delete-preset',
          onclick: () => remove(preset) }, 'Delete') : null),
      panel);
  }

  /** The questions and the values a runner may change, then Run. @param {any} preset @param {HTMLElement} panel */
  async function openRun(preset, panel) {
    if (panel.dataset.open === 'run') { replace(panel); panel.dataset.open = ''; return; }
    panel.dataset.open = 'run';
    /** @type {any[]} */
    let specs = [];
    /** @type {any} */
    let wf = null;
    if (preset.overridable.length || preset.needs_image) {
      try { wf = await api.get(`/api/workflows/${encodeURIComponent(preset.workflow_id)}`); } catch (err) {
        replace(panel, h('p', { class: 'error-line' }, message(err)));
        return;
      }
      specs = wf.manifest.inputs.filter((/** @type {any} */ s) => preset.overridable.includes(s.id)
        || (preset.needs_image && s.type === 'image'));
    }
    const errorLine = h('p', { class: 'error-line', role: 'alert' });
    const form = /** @type {HTMLFormElement} */ (h('form', { class: 'stack preset-run-form', novalidate: true },
      preset.placeholders.map((/** @type {any} */ q) => question(q)),
      specs.map((spec) => h('div', { class: 'field', 'data-field': spec.id },
        spec.type === 'resolution_picker' || spec.type === 'seed' ? h('span', { class: 'label' }, spec.name)
          : h('label', { for: `param-${spec.id}` }, spec.name),
        control({ ...spec, base_model: spec.base_model ?? wf?.manifest.base_model }, preset.params[spec.id] ?? spec.default,
          wf?.choices?.[spec.id]),
        h('p', { class: 'error-line field-error' }))),
      h('p', { class: 'muted small' }, preset.seed_policy === 'random' ? 'A new seed each run.' : `Seed ${preset.params.seed ?? 'as saved'}.`),
      errorLine,
      h('div', { class: 'row' },
        h('button', { class: 'button', type: 'submit', 'data-action': 'start-preset' }, 'Run now'),
        h('button', { class: 'link-button', type: 'button', onclick: () => { replace(panel); panel.dataset.open = ''; } }, 'Close'))));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      errorLine.textContent = '';
      form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
      /** @type {Record<string, string>} */
      const answers = {};
      for (const q of preset.placeholders) {
        const chosen = /** @type {HTMLInputElement | null} */ (form.querySelector(`[name="answer-${q.index}"]:checked`))
          || /** @type {HTMLInputElement | null} */ (form.querySelector(`input[type="text"][name="answer-${q.index}"]`));
        if (chosen && chosen.value.trim()) answers[String(q.index)] = chosen.value;
      }
      const values = collect(form, specs);
      const imageSpec = specs.find((s) => s.type === 'image');
      /** @type {Record<string, any>} */
      const body = { answers, overrides: Object.fromEntries(Object.entries(values).filter(([key]) => preset.overridable.includes(key))) };
      if (imageSpec && values[imageSpec.id]) body.image = values[imageSpec.id];
      try {
        const answer = await api.post(`/api/presets/${encodeURIComponent(preset.id)}/run`, body);
        jobsBox.hidden = false;
        for (const job of answer.items) { session.add(job.id); mine.prepend(jobCard(job)); }
        toast(`${preset.name}: queued.`, 'success');
      } catch (err) {
        if (err instanceof ApiError) {
          for (const [key, text] of Object.entries(err.fields)) {
            const slot = form.querySelector(`[data-question="${CSS.escape(key.replace('answers.', ''))}"] .field-error`)
              || form.querySelector(`[data-field="${CSS.escape(key.replace('overrides.', ''))}"] .field-error`);
            if (slot) slot.textContent = String(text);
          }
        }
        errorLine.textContent = message(err);
      }
    });
    replace(panel, form);
    /** @type {HTMLElement | null} */ (form.querySelector('input, textarea, select'))?.focus();
  }

  /** A choice is a row of buttons (radio inputs a keyboard can reach); free text is a field. @param {any} q */
  function question(q) {
    const label = `${q.index + 1}. ${q.question}`;
    if (q.options) {
      return h('fieldset', { class: 'field preset-question', 'data-question': String(q.index) },
        h('legend', null, label),
        h('div', { class: 'choice-row' }, q.options.map((/** @type {string} */ option, /** @type {number} */ i) => h('label', { class: 'choice' },
          h('input', { type: 'radio', name: `answer-${q.index}`, value: option, checked: q.default ? option === q.default : i === 0 }), h('span', null, option)))),
        h('p', { class: 'error-line field-error' }));
    }
    const id = `answer-${q.index}`;
    return h('div', { class: 'field preset-question', 'data-question': String(q.index) },
      h('label', { for: id }, label),
      // A question with a default may be left empty: the default is shown as the field's hint.
      h('input', { id, name: id, type: 'text', maxlength: 2000, required: q.default == null,
        placeholder: q.default == null ? '' : `${q.default} (default)` }),
      h('p', { class: 'error-line field-error' }));
  }

  /** @param {any} preset @param {HTMLElement} panel */
  function openEdit(preset, panel) {
    if (panel.dataset.open === 'edit') { replace(panel); panel.dataset.open = ''; return; }
    panel.dataset.open = 'edit';
    const errorLine = h('p', { class: 'error-line', role: 'alert' });
    const form = /** @type {HTMLFormElement} */ (h('form', { class: 'stack preset-edit-form', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: `name-${preset.id}` }, 'Name'),
        h('input', { id: `name-${preset.id}`, name: 'name', value: preset.name, maxlength: 120, required: true })),
      h('div', { class: 'field' }, h('label', { for: `description-${preset.id}` }, 'Description'),
        h('textarea', { id: `description-${preset.id}`, name: 'description', rows: 2, maxlength: 4000 }, preset.description)),
      h('div', { class: 'field' }, h('label', { for: `prompt-${preset.id}` }, 'Prompt (questions as [[Question:a|b]] or [[Question]])'),
        h('textarea', { id: `prompt-${preset.id}`, name: 'positive_prompt', rows: 3 }, preset.params.positive_prompt ?? '')),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'private', checked: preset.private }), ' Private: only I and the admins see it'),
      h('div', { class: 'field' }, h('label', { for: `seed-${preset.id}` }, 'Seed'),
        h('select', { id: `seed-${preset.id}`, name: 'seed_policy' },
          h('option', { value: 'random', selected: preset.seed_policy === 'random' }, 'A new seed each run'),
          h('option', { value: 'fixed', selected: preset.seed_policy === 'fixed' }, 'Always the saved seed'))),
      errorLine,
      h('div', { class: 'row' }, h('button', { class: 'button', type: 'submit' }, 'Save'),
        h('button', { class: 'link-button', type: 'button', onclick: () => { replace(panel); panel.dataset.open = ''; } }, 'Cancel'))));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      /** @type {Record<string, any>} */
      const body = { name: String(data.get('name') || ''), description: String(data.get('description') || ''),
        private: data.get('private') === 'on', seed_policy: String(data.get('seed_policy')) };
      if (typeof preset.params.positive_prompt === 'string' || data.get('positive_prompt')) {
        body.params = { ...preset.params, positive_prompt: String(data.get('positive_prompt') || '') };
      }
      try {
        await api.put(`/api/presets/${encodeURIComponent(preset.id)}`, body);
        toast('Preset saved.', 'success');
        await load();
      } catch (err) { errorLine.textContent = message(err); }
    });
    replace(panel, form);
  }

  /** The schedules of one preset come from their own module; a Studio without them says so. @param {any} preset @param {HTMLElement} panel */
  async function openSchedule(preset, panel) {
    if (panel.dataset.open === 'schedule') { replace(panel); panel.dataset.open = ''; return; }
    panel.dataset.open = 'schedule';
    try {
      const { openScheduleDialog } = await import('../lib/schedules.js');
      replace(panel);
      openScheduleDialog(preset, panel);
    } catch (err) {
      replace(panel, h('p', { class: 'error-line' }, `Schedules cannot be shown: ${message(err)}`));
    }
  }

  /** @param {any} preset */
  async function duplicate(preset) {
    try {
      const copy = await api.post(`/api/presets/${encodeURIComponent(preset.id)}/duplicate`, {});
      toast(`Copied as “${copy.name}”.`, 'success');
      await load();
    } catch (err) { toast(message(err), 'error'); }
  }

  /** @param {any} preset */
  async function remove(preset) {
    if (!confirm(`Delete the preset “${preset.name}”? Jobs it ran stay in History.`)) return;
    try {
      await api.del(`/api/presets/${encodeURIComponent(preset.id)}`);
      toast(`“${preset.name}” deleted.`, 'success');
      await load();
    } catch (err) { toast(message(err), 'error'); }
  }

  async function importFile() {
    const file = importInput.files?.[0];
    if (!file) return;
    const body = new FormData();
    body.append('file', file);
    try {
      const response = await fetch('/api/presets/import', { method: 'POST', body, headers: { 'X-CSRF-Token': getCsrfToken() } });
      const data = await response.json();
      if (!response.ok) throw new ApiError(response.status, data.error.code, data.error.message, data.error.details);
      const skipped = data.problems.length ? `; not imported: ${data.problems.map((/** @type {any} */ p) => `${p.file} ${p.reason}`).join('; ')}` : '';
      toast(`${data.imported.length} preset(s) imported${skipped}.`, data.problems.length ? 'info' : 'success');
      await load();
    } catch (err) { toast(message(err), 'error'); }
    importInput.value = '';
  }

  load();
  replace(main, h('div', { class: 'stack' },
    h('div', { class: 'row page-head' }, h('h1', null, 'Presets'),
      h('div', { class: 'actions' },
        h('button', { class: 'button secondary', type: 'button', id: 'preset-import', onclick: () => importInput.click() }, 'Import…'),
        importInput,
        h('a', { class: 'link-button', href: '/api/presets/export', download: '', id: 'preset-export-all' }, 'Export all'))),
    jobsBox, list, problemsBox)); // what was just started stays in sight above the cards
  return () => stops.forEach((stop) => stop());
}
