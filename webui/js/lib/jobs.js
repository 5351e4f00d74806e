// @ts-check
import { api, ApiError } from './api.js';
import { h, replace } from './dom.js';
import { formatDuration, formatTime } from './format.js';
import { live } from './live.js';
import { toast } from './toast.js';

/** @param {unknown} err */
export const message = (err) => (err instanceof ApiError ? err.message : String(err));

const ACTIVE = ['queued', 'submitted', 'running'];

/** @param {any} job */
function progressLine(job) {
  const waiting = job.waiting_for_comfy;
  if (waiting) return `ComfyUI stopped answering at ${formatTime(waiting.since)}; this job fails at ${formatTime(waiting.fails_at)} unless it is back.`;
  const p = job.progress || {};
  if (job.status === 'running' && p.node_title) {
    const step = p.total ? ` · step ${p.step}/${p.total}` : '';
    const eta = p.eta_s ? ` · about ${formatDuration(p.eta_s)} left` : '';
    return `${p.node_title}${step}${eta}`;
  }
  return { queued: 'Waiting in Studio’s queue', submitted: 'Waiting in ComfyUI', running: 'Starting…' }[job.status] || '';
}

/**
 * A job as a card: status, live progress and preview while it runs, outputs and errors after.
 * @param {any} job
 * @param {{compact?: boolean, onChange?: () => void}} [options]
 */
export function jobCard(job, options = {}) {
  const percent = job.status === 'completed' ? 100 : Math.round(job.progress?.percent || 0);
  const actions = [];
  if (ACTIVE.includes(job.status)) {
    actions.push(h('button', { class: 'link-button', 'data-action': 'cancel', onclick: () => act(`/api/jobs/${job.id}/cancel`, 'Cancelled.') },
      job.status === 'running' ? 'Stop' : 'Cancel'));
  } else {
    actions.push(h('button', { class: 'link-button', 'data-action': 'retry', onclick: () => act(`/api/jobs/${job.id}/retry`, 'Queued again.') }, 'Retry'));
    actions.push(h('a', { class: 'link-button', href: `/api/jobs/${job.id}/export`, download: '' }, 'Export'));
  }
  if (options.compact) actions.push(h('a', { class: 'link-button', href: `/job?id=${job.id}`, 'data-link': true }, 'Open'));

  /** @param {string} path @param {string} done */
  async function act(path, done) {
    try {
      await api.post(path);
      toast(done, 'success');
      options.onChange?.();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  const outputs = (job.outputs || []).map((/** @type {any} */ o) => (o.kind === 'image' || o.kind === 'gif'
    ? h('a', { href: o.url, target: '_blank', rel: 'noopener' }, h('img', { class: 'output', src: o.url, alt: o.filename, loading: 'lazy' }))
    : h('a', { href: o.url, class: 'link-button' }, o.filename)));
  return h('article', { class: `job-card status-${job.status}${job.waiting_for_comfy ? ' waiting' : ''}`, 'data-job': job.id,
    'data-waiting': job.waiting_for_comfy ? 'true' : undefined },
    h('header', null,
      h('span', { class: 'badge' }, job.status_text || job.status),
      h('strong', null, job.workflow_name),
      h('time', { class: 'muted' }, formatTime(job.created_at))),
    ACTIVE.includes(job.status) ? [
      h('div', { class: 'meter-bar', role: 'progressbar', 'aria-valuenow': percent, 'aria-valuemin': 0, 'aria-valuemax': 100 },
        h('div', { class: 'meter-fill', style: { width: `${percent}%` } })),
      h('p', { class: 'muted small job-progress' }, progressLine(job)),
      h('img', { class: 'preview', alt: 'Live preview', hidden: true }),
    ] : null,
    job.error ? h('p', { class: 'error-line' }, job.error.message) : null,
    (job.warnings || []).map((/** @type {string} */ w) => h('p', { class: 'muted small job-warning', role: 'note' }, `⚠ ${w}`)),
    outputs.length ? h('div', { class: 'outputs' }, outputs) : null,
    h('div', { class: 'actions' }, actions));
}

/**
 * Keeps a set of rendered job cards up to date from /ws: state changes refetch the job, progress
 * and previews update in place. Returns a function that stops following.
 * @param {HTMLElement} container
 * @param {(job: any) => boolean} wanted which jobs belong in this container
 * @param {{compact?: boolean, onChange?: () => void}} [options]
 */
export function followJobs(container, wanted, options = {}) {
  /** @param {string} id */
  const cardOf = (id) => /** @type {HTMLElement | null} */ (container.querySelector(`[data-job="${id}"]`));
  /** @param {string} id */
  async function refresh(id) {
    try {
      const job = await api.get(`/api/jobs/${id}`);
      const card = cardOf(id);
      if (!wanted(job)) { card?.remove(); return; }
      const fresh = jobCard(job, options);
      if (card) card.replaceWith(fresh); else container.prepend(fresh);
    } catch {
      cardOf(id)?.remove();
    }
  }
  const stops = [
    live.on('jobs/update', (job) => { if (job.deleted) cardOf(job.id)?.remove(); else if (cardOf(job.id) || wanted(job)) refresh(job.id); }),
    live.on('jobs/progress', (p) => {
      const card = cardOf(p.id);
      if (!card || card.dataset.waiting) return;
      const fill = /** @type {HTMLElement | null} */ (card.querySelector('.meter-fill'));
      if (fill) fill.style.width = `${Math.round(p.percent)}%`;
      const line = card.querySelector('.job-progress');
      if (line) line.textContent = progressLine({ status: 'running', progress: p });
    }),
    live.on('jobs/preview', (p) => {
      const image = /** @type {HTMLImageElement | null} */ (cardOf(p.id)?.querySelector('img.preview'));
      if (!image) return;
      image.src = `/api/jobs/${p.id}/preview?seq=${p.seq}`;
      image.hidden = false;
    }),
  ];
  return () => stops.forEach((stop) => stop());
}

/** @param {HTMLElement} container @param {any[]} jobs @param {{compact?: boolean, onChange?: () => void}} [options] */
export function renderJobs(container, jobs, options = {}) {
  replace(container, jobs.length ? jobs.map((job) => jobCard(job, options)) : h('p', { class: 'muted empty-line' }, 'Nothing here.'));
}
