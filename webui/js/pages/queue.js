// @ts-check
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { emptyJobs, followJobs, jobCard, message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';

/** @param {any} job */
const promptOf = (job) => String(job.summary?.prompt ?? job.params?.positive_prompt ?? '');

/** @param {HTMLElement} main @param {{me: any}} context */
export function mount(main, context) {
  const me = context?.me;
  const admin = me?.user.role === 'admin';
  /** Drag a waiting job onto another to put it there. */
  let dragged = '';
  const running = h('div', { id: 'queue-running', class: 'job-list' });
  const waiting = h('ol', { id: 'queue-waiting', class: 'job-list waiting' });
  // Pausing stops everyone's queue, so only admins get the button; others see why nothing starts.
  const pauseButton = h('button', { class: 'button', id: 'pause', hidden: !admin }, 'Pause');
  const pausedNote = h('span', { class: 'muted', id: 'queue-paused', hidden: true }, 'An admin paused the queue.');
  let paused = false;

  async function load() {
    try {
      const state = await api.get('/api/queue');
      paused = state.paused;
      pauseButton.textContent = paused ? 'Resume' : 'Pause';
      pausedNote.hidden = admin || !paused;
      replace(running, state.running.length ? state.running.map((/** @type {any} */ j) => jobCard(j, { compact: true, onChange: load }))
        : h('p', { class: 'muted empty-line' }, emptyJobs('Nothing is running.')));
      /** @type {any[]} */
      const queued = state.queued;
      const mine = (/** @type {any} */ j) => admin || j.owner_id === me?.user.id;
      replace(waiting, queued.length ? queued.map((j, i) => h('li', { 'data-job': j.id, draggable: mine(j) ? 'true' : undefined },
        h('span', { class: 'muted' }, `${i + 1}.`), h('strong', null, j.workflow_name),
        h('span', { class: 'muted small mono', title: j.id }, j.id.slice(0, 8)),
        h('span', { class: 'muted small' }, promptOf(j) ? ` — ${promptOf(j).slice(0, 80)}` : ''),
        h('span', { class: 'row' },
          i > 0 && mine(queued[i - 1]) ? h('button', { class: 'link-button', 'aria-label': 'Move up', title: 'Move up',
            onclick: () => act(`/api/jobs/${j.id}/move`, { before: queued[i - 1].id }) }, '↑') : null,
          i < queued.length - 1 && mine(queued[i + 1]) ? h('button', { class: 'link-button', 'aria-label': 'Move down', title: 'Move down',
            onclick: () => act(`/api/jobs/${j.id}/move`, { before: queued[i + 2]?.id ?? null }) }, '↓') : null,
          i > 0 ? h('button', { class: 'link-button', onclick: () => act(`/api/jobs/${j.id}/front`) }, 'To front') : null,
          h('button', { class: 'link-button', onclick: () => act(`/api/jobs/${j.id}/cancel`) }, 'Cancel'))))
        : h('li', { class: 'muted empty-line' }, 'No job is waiting: new jobs start as soon as ComfyUI is free.'));
    } catch (err) {
      replace(running, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** @param {string} path @param {any} [body] */
  async function act(path, body) {
    try {
      await api.post(path, body);
      load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  waiting.addEventListener('dragstart', (e) => {
    dragged = /** @type {HTMLElement} */ (e.target).closest('li')?.dataset.job || '';
  });
  waiting.addEventListener('dragover', (e) => { if (dragged) e.preventDefault(); });
  waiting.addEventListener('drop', (e) => {
    e.preventDefault();
    const target = /** @type {HTMLElement} */ (e.target).closest('li')?.dataset.job;
    if (dragged && target && target !== dragged) act(`/api/jobs/${dragged}/move`, { before: target });
    dragged = '';
  });
  pauseButton.addEventListener('click', () => act(paused ? '/api/queue/resume' : '/api/queue/pause'));
  const stops = [
    followJobs(running, (job) => ['submitted', 'running'].includes(job.status), { compact: true, onChange: load }),
    live.on('jobs/update', () => load()),
    live.on('queue/state', () => load()),
  ];
  const onResync = () => load();
  live.addEventListener('resync', onResync);
  replace(main, h('h1', null, 'Queue'),
    h('div', { class: 'row queue-bar' }, pauseButton, pausedNote,
      h('button', { class: 'link-button', onclick: () => act('/api/queue/cancel-waiting') },
        admin ? 'Cancel everything waiting' : 'Cancel my waiting jobs')),
    h('section', { class: 'card' }, h('h2', null, 'Running'), running),
    h('section', { class: 'card' }, h('h2', null, 'Waiting'), waiting));
  load();
  return () => { stops.forEach((stop) => stop()); live.removeEventListener('resync', onResync); };
}
