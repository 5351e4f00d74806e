// @ts-check
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { followJobs, jobCard, message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';

/**
 * One job at `/job/<id>` (older links: `/job?id=<id>`): its card (live, with ComfyUI's warnings,
 * any wait for ComfyUI and advice in words), parameters, the timeline with ComfyUI's own words for
 * a failure, and the API workflow it ran.
 * @param {HTMLElement} main @param {{path?: string, query?: URLSearchParams}} [context]
 */
export function mount(main, context) {
  const path = context?.path ?? location.pathname;
  const id = decodeURIComponent(path.startsWith('/job/') ? path.slice('/job/'.length)
    : (context?.query ?? new URLSearchParams(location.search)).get('id') || '');
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
            h('a', { class: 'link-button', href: `/run/${encodeURIComponent(job.workflow_id)}?from_job=${encodeURIComponent(job.id)}`,
              'data-link': true }, 'Open in Run'),
            job.status === 'queued' || job.status === 'submitted' || job.status === 'running' ? null
              : h('button', { class: 'link-button danger-text', onclick: async () => {
                if (!confirm('Delete this job and its files?')) return;
                try { await api.del(`/api/jobs/${job.id}`); history.back(); } catch (err) { toast(message(err), 'error'); }
              } }, 'Delete'))),
        h('section', { class: 'card' }, h('h2', null, 'Timeline'),
          h('ol', { class: 'timeline' }, (job.timeline || []).map((/** @type {any} */ t) => h('li', { class: t.warning ? 'warning' : null },
            h('time', { class: 'muted' }, formatTime(t.at)), ` ${t.status}`, t.note ? h('span', { class: 'muted' }, ` — ${t.note}`) : null))),
          // ComfyUI's own words for what went wrong: the card above says it for people.
          job.error?.message ? h('details', { class: 'error-detail' }, h('summary', null, 'What ComfyUI said'),
            h('pre', { class: 'code' }, [job.error.message, job.error.exception_type].filter(Boolean).join('\n'))) : null),
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
