// @ts-check
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { followJobs, jobCard, message } from '../lib/jobs.js';

/** @param {HTMLElement} main */
export function mount(main) {
  const list = h('div', { id: 'history-list', class: 'job-list grid-list' });
  const more = h('button', { class: 'link-button', hidden: true }, 'Load more');
  const status = h('select', { name: 'status', 'aria-label': 'Status' },
    ['', 'completed', 'failed', 'interrupted', 'cancelled', 'queued,submitted,running'].map((s) => h('option', { value: s }, s || 'any status')));
  const workflow = h('select', { name: 'workflow', 'aria-label': 'Workflow' }, h('option', { value: '' }, 'any workflow'));
  const text = h('input', { name: 'q', type: 'search', placeholder: 'Search prompts', 'aria-label': 'Search prompts' });
  const since = h('input', { name: 'since', type: 'date', 'aria-label': 'Since' });
  /** @type {string | null} */
  let next = null;

  function query() {
    const params = new URLSearchParams({ limit: '24' });
    for (const field of [status, workflow, text]) {
      const value = /** @type {HTMLInputElement} */ (field).value;
      if (value) params.set(/** @type {HTMLInputElement} */ (field).name, value);
    }
    const day = /** @type {HTMLInputElement} */ (since).value;
    if (day) params.set('since', new Date(`${day}T00:00:00`).toISOString());
    return params;
  }

  /** @param {boolean} append */
  async function load(append) {
    const params = query();
    if (append && next) params.set('before', next);
    try {
      const page = await api.get(`/api/jobs?${params}`);
      const cards = page.items.map((/** @type {any} */ job) => jobCard(job, { compact: true, onChange: () => load(false) }));
      if (append) list.append(...cards);
      else replace(list, cards.length ? cards : h('p', { class: 'muted empty-line' }, 'No jobs match.'));
      next = page.next;
      more.hidden = !next;
    } catch (err) {
      replace(list, h('p', { class: 'error-line' }, message(err)));
    }
  }

  api.get('/api/workflows').then(({ items }) => {
    workflow.append(...items.map((/** @type {any} */ w) => h('option', { value: w.id }, w.name)));
  }).catch(() => {});
  let timer = 0;
  for (const field of [status, workflow, since]) field.addEventListener('change', () => load(false));
  text.addEventListener('input', () => { clearTimeout(timer); timer = window.setTimeout(() => load(false), 250); });
  more.addEventListener('click', () => load(true));
  const stop = followJobs(list, (job) => Boolean(list.querySelector(`[data-job="${job.id}"]`)), { compact: true, onChange: () => load(false) });
  replace(main, h('h1', null, 'History'),
    h('div', { class: 'row filters' }, status, workflow, text, since),
    list, h('div', { class: 'row' }, more));
  load(false);
  return stop;
}
