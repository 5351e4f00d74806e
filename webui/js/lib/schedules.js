// @ts-check
/**
 * A preset's schedules, in a panel on its card: each with its cron expression, time zone,
 * missed-run policy, the next three run times and what happened last time; a form to add one
 * (a few common cron expressions to start from, the browser's time zone, the preset's questions
 * answered once for every run); enable, disable and delete. Studio checks everything again: a
 * refused field comes back under that field, anything else as one readable line.
 */
import { api, ApiError } from './api.js';
import { h, replace } from './dom.js';
import { toast } from './toast.js';

/** Common expressions, so nobody has to remember cron's field order. */
export const CRON_PRESETS = [
  { label: 'Every day at 9:00', cron: '0 9 * * *' },
  { label: 'Every hour', cron: '0 * * * *' },
  { label: 'Weekdays at 8:30', cron: '30 8 * * 1-5' },
  { label: 'Mondays at 9:00', cron: '0 9 * * 1' },
  { label: 'Every 15 minutes', cron: '*/15 * * * *' },
  { label: 'The 1st of each month at 6:00', cron: '0 6 1 * *' },
];

/** What each missed-run policy means, in the list and as the form's choices. */
const POLICIES = { skip: 'Runs missed while Studio was down: skipped', run_once: 'Runs missed while Studio was down: run once' };
const POLICY_CHOICES = { skip: 'Skip them', run_once: 'Run once' };

/** The browser's own IANA time zone, or UTC when it does not say. @returns {string} */
export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** @param {unknown} err @returns {string} */
function readable(err) {
  if (err instanceof ApiError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * A fire time as its schedule's zone shows it (the server sends ISO 8601 with that zone's offset).
 * @param {string} iso @param {string} zone @returns {string}
 */
export function formatRun(iso, zone) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  try {
    return when.toLocaleString(undefined, { timeZone: zone, weekday: 'short', year: 'numeric', month: 'short',
      day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
  } catch {
    return iso;
  }
}

/** @param {any} s @returns {string} */
function lastResult(s) {
  if (s.disabled_reason) return `Stopped: ${s.disabled_reason}`;
  if (s.last_error) return `Last run failed: ${s.last_error}`;
  if (s.last_fired_at) {
    const jobs = (s.last_jobs || []).length;
    return `Last fired ${formatRun(s.last_fired_at, s.timezone)}${jobs ? ` (${jobs} job${jobs === 1 ? '' : 's'} queued)` : ''}`;
  }
  return 'Not fired yet';
}

/**
 * Shows the schedules of `preset` inside `container` (an empty element on the preset's card).
 * @param {any} preset a preset as GET /api/presets lists it
 * @param {HTMLElement} container
 */
export function openScheduleDialog(preset, container) {
  const listBox = h('div', { class: 'stack schedule-list', 'aria-live': 'polite' });
  const errorLine = h('p', { class: 'error-line', role: 'alert' });
  const base = `schedule-${preset.id}`;

  /** @param {string} text */
  function fail(text) { errorLine.textContent = text; }

  async function load() {
    try {
      const answer = await api.get(`/api/schedules?preset=${encodeURIComponent(preset.id)}`);
      render(answer.items || []);
    } catch (err) { fail(readable(err)); }
  }

  /** @param {any[]} items */
  function render(items) {
    if (!items.length) {
      replace(listBox, h('p', { class: 'muted' }, 'No schedules yet.'));
      return;
    }
    replace(listBox, items.map((s) => h('div', { class: `card schedule-item${s.enabled ? '' : ' disabled'}`,
      'data-schedule': String(s.id), 'data-enabled': s.enabled ? 'true' : 'false' },
    h('div', { class: 'row' },
      h('code', { class: 'schedule-cron' }, s.cron), h('span', null, ` in ${s.timezone}`),
      h('span', { class: 'badge' }, s.enabled ? 'On' : 'Off')),
    h('p', { class: 'muted' }, POLICIES[/** @type {'skip' | 'run_once'} */ (s.missed_policy)] || s.missed_policy),
    s.enabled && (s.next_runs || []).length
      ? h('div', null, h('span', null, 'Next runs:'),
        h('ul', { class: 'schedule-next' }, s.next_runs.map((/** @type {string} */ iso) => h('li', { 'data-iso': iso }, formatRun(iso, s.timezone)))))
      : null,
    h('p', { class: 'schedule-last' }, lastResult(s)),
    h('div', { class: 'row' },
      h('button', { class: 'link-button', type: 'button', 'data-action': s.enabled ? 'disable-schedule' : 'enable-schedule',
        onclick: () => toggle(s) }, s.enabled ? 'Disable' : 'Enable'),
      h('button', { class: 'link-button danger-text', type: 'button', 'data-action': 'delete-schedule',
        onclick: () => remove(s) }, 'Delete')))));
  }

  /** @param {any} s */
  async function toggle(s) {
    fail('');
    try {
      await api.post(`/api/schedules/${s.id}/${s.enabled ? 'disable' : 'enable'}`, {});
      toast(s.enabled ? 'Schedule disabled.' : 'Schedule enabled.', 'success');
      await load();
    } catch (err) { fail(readable(err)); }
  }

  /** @param {any} s */
  async function remove(s) {
    if (!window.confirm(`Delete the schedule “${s.cron}”?`)) return;
    fail('');
    try {
      await api.del(`/api/schedules/${s.id}`);
      toast('Schedule deleted.', 'success');
      await load();
    } catch (err) { fail(readable(err)); }
  }

  // -- the form to add one -------------------------------------------------------------------

  const cronInput = /** @type {HTMLInputElement} */ (h('input', { id: `${base}-cron`, name: 'cron', value: CRON_PRESETS[0].cron,
    maxlength: 120, required: true, spellcheck: 'false', autocomplete: 'off' }));
  const zoneInput = /** @type {HTMLInputElement} */ (h('input', { id: `${base}-tz`, name: 'timezone', value: browserTimeZone(),
    maxlength: 64, required: true, spellcheck: 'false', autocomplete: 'off' }));
  const preview = h('ul', { class: 'schedule-preview muted' });
  /** @type {Record<string, HTMLElement>} */
  const fieldErrors = {
    cron: h('p', { class: 'error-line field-error', 'data-field-error': 'cron' }),
    timezone: h('p', { class: 'error-line field-error', 'data-field-error': 'timezone' }),
    missed_policy: h('p', { class: 'error-line field-error', 'data-field-error': 'missed_policy' }),
  };
  const questions = (preset.placeholders || []).map((/** @type {any} */ q) => {
    const id = `${base}-answer-${q.index}`;
    const label = q.scene === null || q.scene === undefined ? q.question : `Scene ${q.scene + 1}: ${q.question}`;
    const control = q.options
      ? h('select', { id, name: `answer-${q.index}` }, q.options.map((/** @type {string} */ o) => h('option', { value: o }, o)))
      : h('input', { id, name: `answer-${q.index}`, type: 'text', maxlength: 2000, required: true });
    return h('div', { class: 'field', 'data-question': String(q.index) }, h('label', { for: id }, label), control);
  });

  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'stack schedule-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: `${base}-common` }, 'Starting point'),
      h('select', { id: `${base}-common`, name: 'common', onchange: (/** @type {Event} */ e) => {
        const value = /** @type {HTMLSelectElement} */ (e.target).value;
        if (value) { cronInput.value = value; refreshPreview(); }
      } }, CRON_PRESETS.map((p) => h('option', { value: p.cron }, p.label)), h('option', { value: '' }, 'Custom…'))),
    h('div', { class: 'field' }, h('label', { for: `${base}-cron` }, 'Cron (minute hour day month weekday)'), cronInput, fieldErrors.cron),
    h('div', { class: 'field' }, h('label', { for: `${base}-tz` }, 'Time zone'), zoneInput, fieldErrors.timezone),
    h('div', { class: 'field' }, h('label', { for: `${base}-policy` }, 'Runs missed while Studio was down'),
      h('select', { id: `${base}-policy`, name: 'missed_policy' },
        h('option', { value: 'skip' }, POLICY_CHOICES.skip), h('option', { value: 'run_once' }, POLICY_CHOICES.run_once)),
      fieldErrors.missed_policy),
    questions.length ? h('p', { class: 'muted' }, 'Answers used for every run:') : null,
    questions,
    h('div', null, h('span', { class: 'muted' }, 'It would run:'), preview),
    h('div', { class: 'row' }, h('button', { class: 'button', type: 'submit', 'data-action': 'create-schedule' }, 'Add schedule'))));

  /** @type {number | undefined} */
  let timer;
  let asked = 0; // only the answer to the latest question is shown: typing outruns the network
  function refreshPreview() {
    window.clearTimeout(timer);
    timer = window.setTimeout(async () => {
      const mine = ++asked;
      const zone = zoneInput.value;
      try {
        const answer = await api.post('/api/schedules/preview', { cron: cronInput.value, timezone: zone, count: 3 });
        if (mine !== asked) return;
        fieldErrors.cron.textContent = '';
        fieldErrors.timezone.textContent = '';
        replace(preview, (answer.items || []).map((/** @type {string} */ iso) => h('li', null, formatRun(iso, zone))));
      } catch (err) {
        if (mine !== asked) return;
        fieldErrors.cron.textContent = '';
        fieldErrors.timezone.textContent = '';
        replace(preview);
        showFieldErrors(err);
      }
    }, 250);
  }
  cronInput.addEventListener('input', () => {
    const common = /** @type {HTMLSelectElement | null} */ (form.querySelector('select[name=common]'));
    if (common) common.value = CRON_PRESETS.some((p) => p.cron === cronInput.value.trim()) ? cronInput.value.trim() : '';
    refreshPreview();
  });
  zoneInput.addEventListener('input', refreshPreview);

  /** @param {unknown} err */
  function showFieldErrors(err) {
    const fields = err instanceof ApiError ? err.fields : {};
    let shown = false;
    for (const [name, text] of Object.entries(fields)) {
      const line = fieldErrors[name];
      if (line) { line.textContent = String(text); shown = true; }
    }
    if (!shown) fail(readable(err));
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fail('');
    for (const line of Object.values(fieldErrors)) line.textContent = '';
    const data = new FormData(form);
    /** @type {Record<string, string>} */
    const answers = {};
    for (const q of preset.placeholders || []) answers[String(q.index)] = String(data.get(`answer-${q.index}`) ?? '');
    try {
      await api.post('/api/schedules', { preset_id: preset.id, cron: cronInput.value.trim(), timezone: zoneInput.value.trim(),
        missed_policy: String(data.get('missed_policy') || 'skip'), answers });
      toast('Schedule added.', 'success');
      await load();
    } catch (err) { showFieldErrors(err); }
  });

  replace(container, h('section', { class: 'stack schedule-dialog', 'aria-label': `Schedules of ${preset.name || preset.id}` },
    h('h3', null, 'Schedules'), listBox, errorLine, h('h4', null, 'Add a schedule'), form));
  refreshPreview();
  load();
}
