// @ts-check
/**
 * A job as every page shows it. What a job *is* right now comes from two sources that can arrive
 * in any order: REST snapshots (a page's first load, a refetch) and /ws events (`jobs/update`,
 * `jobs/progress`, `jobs/preview`). `reduceJob` is the one place that folds them together, so a
 * card never says "QUEUED" beside "step 9/20", and a late snapshot never rolls a finished job back.
 * Every card rendered anywhere goes through it: `jobCard(job)` reduces `job` into what is known.
 */
import { api, ApiError } from './api.js';
import { h, replace } from './dom.js';
import { formatDuration, formatTime } from './format.js';
import { live } from './live.js';
import { toast } from './toast.js';

/** @param {unknown} err */
export const message = (err) => (err instanceof ApiError ? err.message : String(err));

export const WAITING_TEXT = 'ComfyUI stopped answering — this job will be checked when it is back';
const ACTIVE = ['queued', 'submitted', 'running'];
const FINISHED = ['completed', 'failed', 'cancelled', 'interrupted'];
/** @type {Record<string, number>} */
const RANK = { queued: 0, submitted: 1, running: 2 };
const REMEMBERED = 500;

/**
 * @typedef {{job: any, status: string, progress: any, liveAt: number, previewSeq: number | null}} JobState
 * @typedef {{type: 'snapshot' | 'jobs/update' | 'jobs/progress' | 'jobs/preview', payload: any, ts?: number}} JobEvent
 */

/** Seconds (server clock) of the job's newest recorded change: every status change and note adds one. @param {any} job */
function changedAt(job) {
  const timeline = Array.isArray(job?.timeline) ? job.timeline : [];
  const last = timeline[timeline.length - 1];
  const at = Date.parse(last?.at || job?.created_at || '');
  return Number.isFinite(at) ? at / 1000 : 0;
}

/** @param {any} job @param {JobState | undefined} before @returns {JobState} */
function taken(job, before) {
  const running = job.status === 'running';
  const hasNode = Boolean(job.progress?.node_title);
  return {
    job,
    status: job.status,
    // The row's progress lags the live one: keep the live step while the job runs.
    progress: running && !hasNode && before?.progress?.node_title ? before.progress : job.progress || {},
    liveAt: running ? before?.liveAt || 0 : 0,
    previewSeq: ACTIVE.includes(job.status) ? before?.previewSeq ?? null : null,
  };
}

/**
 * The displayed state after one more piece of news. Rules: a finished job stays finished; news
 * older than what is shown is dropped; a progress event means the job runs, and a queued or
 * submitted state recorded before that progress arrived is old news, not a step back.
 * @param {JobState | undefined} state @param {JobEvent} event @returns {JobState | undefined}
 */
export function reduceJob(state, event) {
  const p = event.payload;
  if (event.type === 'snapshot' || event.type === 'jobs/update') {
    if (!p || typeof p.status !== 'string') return state;
    if (!state) return taken(p, undefined);
    if (FINISHED.includes(state.status)) {
      // Only more of the same ending (its outputs, its advice) gets in.
      return FINISHED.includes(p.status) && changedAt(p) >= changedAt(state.job) ? taken(p, state) : state;
    }
    if (FINISHED.includes(p.status)) return taken(p, state);
    if (changedAt(p) < changedAt(state.job)) return state;
    if (state.status === 'running' && RANK[p.status] < RANK.running && changedAt(p) <= state.liveAt) {
      return { ...state, job: { ...p, status: 'running' } };
    }
    return taken(p, state);
  }
  if (!state || FINISHED.includes(state.status) || state.job.waiting_for_comfy) return state;
  const at = typeof event.ts === 'number' ? event.ts : Date.now() / 1000;
  if (event.type === 'jobs/progress') {
    return { ...state, status: 'running', progress: p, liveAt: Math.max(state.liveAt, at) };
  }
  if (event.type === 'jobs/preview') return { ...state, status: 'running', previewSeq: p.seq, liveAt: Math.max(state.liveAt, at) };
  return state;
}

/** What every page knows of each job it has shown, newest last (bounded). @type {Map<string, JobState>} */
const known = new Map();

/** @param {string} id @param {JobEvent} event @returns {JobState | undefined} */
function know(id, event) {
  const before = known.get(id);
  const after = reduceJob(before, event);
  if (after && after !== before) {
    known.delete(id);
    known.set(id, after);
    while (known.size > REMEMBERED) known.delete(/** @type {string} */ (known.keys().next().value));
  }
  return after;
}

/** @type {{id: number, role: string} | null} */
let viewer = null;
/** Who is looking: "Stopped by you" is only true for the job's owner. @param {{id: number, role: string} | null} who */
export function setViewer(who) { viewer = who; }

/** The sentence a person reads for a failed or stopped job (the server's advice; never a class name). @param {any} job */
export function errorText(job) {
  const advice = job.advice;
  if (advice?.stopped_by === 'owner' && viewer && job.owner_id !== viewer.id) return 'Stopped by its owner.';
  return advice?.message || job.error?.message || '';
}

/** @param {JobState} state */
function progressLine(state) {
  if (state.job.waiting_for_comfy) return WAITING_TEXT;
  const p = state.progress || {};
  if (state.status === 'running' && p.node_title) {
    const step = p.total ? ` · step ${p.step}/${p.total}` : '';
    const eta = p.eta_s ? ` · about ${formatDuration(p.eta_s)} left` : '';
    return `${p.node_title}${step}${eta}`;
  }
  return { queued: 'Waiting in Studio’s queue', submitted: 'Waiting in ComfyUI', running: 'Starting…' }[state.status] || '';
}

/** @param {JobState} state */
function badgeText(state) {
  if (state.job.waiting_for_comfy) return 'waiting for ComfyUI';
  return { interrupted: 'stopped', cancelled: 'stopped' }[state.status] || state.status;
}

/** @param {string} path @param {any} body @param {string} done @param {(() => void) | undefined} after */
async function act(path, body, done, after) {
  try {
    await api.post(path, body);
    toast(done, 'success');
    after?.();
  } catch (err) {
    toast(message(err), 'error');
  }
}

/** Buttons for what fixes a known failure. @param {any} job */
function adviceActions(job) {
  return (job.advice?.actions || []).map((/** @type {any} */ a) => {
    if (a.kind === 'free_vram') {
      return a.admin_only && viewer?.role !== 'admin' ? null : h('button', { class: 'link-button', 'data-action': 'free-vram',
        onclick: () => act('/api/comfy/free', { unload_models: true, free_memory: true }, 'ComfyUI will free VRAM after the current job.', undefined) },
      'Free VRAM');
    }
    if (a.kind === 'install_missing') {
      return h('button', { class: 'link-button', 'data-action': 'install-missing',
        onclick: () => act(`/api/workflows/${encodeURIComponent(job.workflow_id)}/install-missing`, undefined, 'Download queued: see Downloads.', undefined) },
      'Download the missing model');
    }
    return null;
  });
}

/** @param {any} job */
function outputList(job) {
  const outputs = job.outputs || [];
  return outputs.map((/** @type {any} */ o, /** @type {number} */ i) => {
    if (o.kind !== 'image' && o.kind !== 'gif') return h('a', { href: o.url, class: 'link-button' }, o.filename);
    // Server-made thumbnails for a picture larger than a card; a small one is shown as it is.
    const width = Number(o.width) || 0;
    const small = width > 256 || !width ? o.thumbs?.['256'] : null;
    const big = o.thumbs?.['768'];
    const image = h('img', { class: 'output', src: small || o.url, alt: job.summary?.prompt || o.filename, loading: 'lazy',
      srcset: small && big ? `${small} 256w, ${big} ${width ? Math.min(width, 768) : 768}w` : null,
      sizes: small ? '(max-width: 720px) 100vw, 260px' : null });
    return h('a', { href: o.url, class: 'output-link', onclick: (/** @type {MouseEvent} */ e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      const items = outputs.map((/** @type {any} */ output) => ({ job, output }));
      import('./lightbox.js').then((m) => m.openLightbox(items, i, {})).catch(() => window.open(o.url, '_blank', 'noopener'));
    } }, image);
  });
}

/**
 * A job as a card: status, live progress and preview while it runs, outputs and advice after.
 * @param {any} job a snapshot; what is already known of the job wins where it is newer
 * @param {{compact?: boolean, onChange?: () => void}} [options]
 */
export function jobCard(job, options = {}) {
  const state = know(job.id, { type: 'snapshot', payload: job }) || taken(job, undefined);
  return cardOf(state, options);
}

/** @param {JobState} state @param {{compact?: boolean, onChange?: () => void}} options */
function cardOf(state, options) {
  const job = state.job;
  const status = state.status;
  const percent = status === 'completed' ? 100 : Math.round(state.progress?.percent || 0);
  const actions = [];
  if (ACTIVE.includes(status)) {
    actions.push(h('button', { class: 'link-button', 'data-action': 'cancel',
      onclick: () => act(`/api/jobs/${job.id}/cancel`, undefined, status === 'running' ? 'Stopping.' : 'Cancelled.', options.onChange) },
    status === 'running' ? 'Stop' : 'Cancel'));
  } else {
    actions.push(adviceActions(job));
    if (status === 'completed' && job.summary?.seed !== null && job.summary?.seed !== undefined) {
      actions.push(h('button', { class: 'link-button', 'data-action': 'new-seed',
        onclick: () => act(`/api/jobs/${job.id}/again`, { seed: 'new', count: 1 }, 'Queued with a new seed.', options.onChange) }, 'New seed'));
    } else {
      actions.push(h('button', { class: 'link-button', 'data-action': 'retry',
        onclick: () => act(`/api/jobs/${job.id}/retry`, undefined, 'Queued again.', options.onChange) }, 'Retry'));
    }
    actions.push(h('a', { class: 'link-button', href: `/api/jobs/${job.id}/export`, download: '' }, 'Export'));
  }
  if (options.compact) actions.push(h('a', { class: 'link-button', href: `/job/${job.id}`, 'data-link': true }, 'Open'));
  const outputs = outputList(job);
  const said = errorText(job);
  return h('article', { class: `job-card status-${status}${job.waiting_for_comfy ? ' waiting' : ''}`, 'data-job': job.id,
    'data-status': status, 'data-waiting': job.waiting_for_comfy ? 'true' : undefined },
  h('header', null,
    h('span', { class: 'badge' }, badgeText(state)),
    h('strong', null, job.workflow_name),
    h('time', { class: 'muted' }, formatTime(job.created_at))),
  ACTIVE.includes(status) ? [
    h('div', { class: 'meter-bar', role: 'progressbar', 'aria-label': 'Progress', 'aria-valuenow': percent, 'aria-valuemin': 0, 'aria-valuemax': 100 },
      h('div', { class: 'meter-fill', style: { width: `${percent}%` } })),
    h('p', { class: `small job-progress${job.waiting_for_comfy ? ' warn-line' : ' muted'}`, role: job.waiting_for_comfy ? 'status' : null }, progressLine(state)),
    h('img', { class: 'preview', alt: 'Live preview', hidden: state.previewSeq === null,
      src: state.previewSeq === null ? null : `/api/jobs/${job.id}/preview?seq=${state.previewSeq}` }),
  ] : null,
  said ? h('p', { class: status === 'failed' ? 'error-line' : 'muted' }, said) : null,
  (job.warnings || []).map((/** @type {string} */ w) => h('p', { class: 'muted small job-warning', role: 'note' }, `⚠ ${w}`)),
  outputs.length ? h('div', { class: 'outputs' }, outputs) : null,
  h('div', { class: 'actions' }, actions));
}

/**
 * Keeps the job cards in `container` up to date from /ws through `reduceJob`: a change of status
 * redraws the card, progress and previews update it in place. Returns a function that stops.
 * @param {HTMLElement} container
 * @param {(job: any) => boolean} wanted which jobs belong in this container
 * @param {{compact?: boolean, onChange?: () => void}} [options]
 */
export function followJobs(container, wanted, options = {}) {
  /** @param {string} id */
  const cardOf_ = (id) => /** @type {HTMLElement | null} */ (container.querySelector(`[data-job="${CSS.escape(id)}"]`));
  /** @param {JobState} state */
  function draw(state) {
    const card = cardOf_(state.job.id);
    if (!wanted({ ...state.job, status: state.status })) { card?.remove(); return; }
    const fresh = cardOf(state, options);
    if (card) card.replaceWith(fresh); else container.prepend(fresh);
  }
  /** @param {JobState} state */
  function touch(state) {
    const card = cardOf_(state.job.id);
    if (!card) return;
    if (card.dataset.status !== state.status) { draw(state); return; }
    const fill = /** @type {HTMLElement | null} */ (card.querySelector('.meter-fill'));
    if (fill) fill.style.width = `${Math.round(state.progress?.percent || 0)}%`;
    const line = card.querySelector('.job-progress');
    if (line) line.textContent = progressLine(state);
    const image = /** @type {HTMLImageElement | null} */ (card.querySelector('img.preview'));
    if (image && state.previewSeq !== null) {
      image.src = `/api/jobs/${state.job.id}/preview?seq=${state.previewSeq}`;
      image.hidden = false;
    }
  }
  /** A change of status brings outputs and advice the event may not carry: the REST answer has them. @param {string} id */
  async function refresh(id) {
    try {
      const state = know(id, { type: 'snapshot', payload: await api.get(`/api/jobs/${id}`) });
      if (state) draw(state);
    } catch {
      cardOf_(id)?.remove();
    }
  }
  const stops = [
    live.on('jobs/update', (job, event) => {
      if (job.deleted) { cardOf_(job.id)?.remove(); known.delete(job.id); return; }
      const state = know(job.id, { type: 'jobs/update', payload: job, ts: event?.ts });
      if (!state || !(cardOf_(job.id) || wanted(job))) return;
      draw(state);
      if (FINISHED.includes(state.status)) refresh(job.id);
    }),
    live.on('jobs/progress', (p, event) => {
      const state = know(p.id, { type: 'jobs/progress', payload: p, ts: event?.ts });
      if (state) touch(state);
    }),
    live.on('jobs/preview', (p, event) => {
      const state = know(p.id, { type: 'jobs/preview', payload: p, ts: event?.ts });
      if (state) touch(state);
    }),
  ];
  return () => stops.forEach((stop) => stop());
}

/**
 * @param {HTMLElement} container @param {any[]} jobs
 * @param {{compact?: boolean, onChange?: () => void, empty?: Node | string}} [options]
 */
export function renderJobs(container, jobs, options = {}) {
  replace(container, jobs.length ? jobs.map((job) => jobCard(job, options))
    : h('p', { class: 'muted empty-line' }, options.empty ?? emptyJobs()));
}

/** What an empty list of jobs says: where jobs come from. @param {string} [lead] */
export function emptyJobs(lead = 'No jobs yet.') {
  const onRun = location.pathname === '/' || location.pathname === '/run' || location.pathname.startsWith('/run/');
  if (onRun) return h('span', null, `${lead} Fill in the form and press Run: your results appear here.`);
  return h('span', null, `${lead} `, h('a', { href: '/run', 'data-link': true }, 'Make an image on Run'), '.');
}
