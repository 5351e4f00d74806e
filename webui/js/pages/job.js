// @ts-check
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { followJobs, jobCard, message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';

/** One job: its card (live, with ComfyUI's warnings and any wait for ComfyUI), parameters, timeline, and the API workflow it ran. */
/** @param {HTMLElement} main */
export function mount(main) {
  const id = new URLSearchParams(location.search).get('id') || '';
  const cardBox = h('div', { class: 'job-list' });
  const details = h('div', { class: 'stack job-details' });

  async function load() {
    try {
      const job = await api.get(`/api/jobs/${id}`);
      replace(cardBox, jobCard(job, { onChange: load }));
      replace(details,
        h('section', { class: 'card' }, h('h2', null, 'Parameters'),
          h('dl', { class: 'facts', id: 'job-params' }, Object.entries(job.params).flatMap(([key, value]) => [
            h('dt', null, key), h('dd', null, typeof value === 'string' ? value : JSON.stringify(value))])),
          h('div', { class: 'actions' },
            h('a', { class: 'link-button', href: `/run?from=${job.id}`, 'data-link': true }, 'Open in Run'),
            job.status === 'queued' || job.status === 'submitted' || job.status === 'running' ? null
              : h('button', { class: 'link-button danger-text', onclick: async () => {
                if (!confirm('Delete this job and its files?')) return;
                try { await api.del(`/api/jobs/${job.id}`); history.back(); } catch (err) { toast(message(err), 'error'); }
              } }, 'Delete'))),
        h('section', { class: 'card' }, h('h2', null, 'Timeline'),
          h('ol', { class: 'timeline' }, (job.timeline || []).map((/** @type {any} */ t) => h('li', { class: t.warning ? 'warning' : null },
            h('time', { class: 'muted' }, formatTime(t.at)), ` ${t.status}`, t.note ? h('span', { class: 'muted' }, ` — ${t.note}`) : null)))),
        h('section', { class: 'card' }, h('h2', null, 'API workflow'),
          h('details', null, h('summary', null, 'Show the prompt sent to ComfyUI'),
            h('pre', { class: 'code' }, JSON.stringify(job.prompt, null, 2)))));
    } catch (err) {
      replace(cardBox, h('p', { class: 'error-line' }, message(err)));
    }
  }
  const stop = followJobs(cardBox, (job) => job.id === id, { onChange: load });
  replace(main, h('h1', null, 'Job'), cardBox, details);
  load();
  return stop;
}
