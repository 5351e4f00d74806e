// @ts-check
/**
 * The Run page's stage: the newest job's live preview, growing into its result, with "new seed"
 * and "variations" once it is done, and a strip of this session's results under it. The states
 * come from lib/jobs.js's reducer through the same events, so the stage and the cards agree.
 */
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { errorText, message, reduceJob, WAITING_TEXT } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';

const FINISHED = ['completed', 'failed', 'cancelled', 'interrupted'];

/** @param {{job: any, output: any}[]} items @param {number} index @param {string} fallback */
function openItems(items, index, fallback) {
  // The lightbox is a separate module: should it fail to load, the file still opens.
  import('../lib/lightbox.js').then((m) => m.openLightbox(items, index, {}))
    .catch(() => window.open(fallback, '_blank', 'noopener'));
}

/** @param {any} output */
const isPicture = (output) => output && (output.kind === 'image' || output.kind === 'gif');

export class Stage {
  constructor() {
    this.image = /** @type {HTMLImageElement} */ (h('img', { class: 'stage-image', alt: '', hidden: true }));
    this.placeholder = h('p', { class: 'stage-placeholder muted' }, 'Your image appears here as it renders.');
    this.status = h('p', { class: 'stage-status small', role: 'status', 'aria-live': 'polite' });
    this.count = /** @type {HTMLInputElement} */ (h('input', { id: 'variations-count', type: 'number', min: 2, max: 16, value: 4 }));
    this.actions = h('div', { class: 'row stage-actions', hidden: true },
      h('button', { type: 'button', class: 'button secondary', id: 'stage-new-seed', onclick: () => this.again(1) }, 'New seed'),
      h('button', { type: 'button', class: 'button secondary', id: 'stage-variations',
        onclick: () => this.again(Number(this.count.value) || 4) }, 'Variations'),
      h('label', { for: 'variations-count', class: 'small' }, 'how many'), this.count);
    this.strip = h('div', { class: 'result-strip', id: 'session-results', 'aria-label': 'Results from this session' });
    // Named by what it shows (the placeholder's words, then the image's alt), so a voice user can say what they see.
    this.frame = h('button', { type: 'button', class: 'stage-frame', id: 'stage', title: 'Open the current result large',
      onclick: () => this.open() }, this.placeholder, this.image);
    this.element = h('div', { class: 'stage card' }, this.frame, this.status, this.actions, this.strip);
    /** @type {{job: any, output: any}[]} */
    this.items = [];
    /** @type {any} */
    this.job = null;
    /** @type {any} */
    this.state = undefined;
    /** @type {Set<string>} */
    this.tracked = new Set();
    /** @type {(jobs: any[]) => void} */
    this.onAgain = () => {};
  }

  /** Puts the first of `jobs` on the stage; the others join the strip when done. @param {any[]} jobs @param {(jobs: any[]) => void} onAgain */
  show(jobs, onAgain) {
    this.onAgain = onAgain;
    jobs.forEach((job) => this.tracked.add(job.id));
    this.job = jobs[0];
    this.state = reduceJob(undefined, { type: 'snapshot', payload: jobs[0] });
    this.actions.hidden = true;
    this.frame.classList.add('busy');
    this.say();
  }

  say() {
    const state = this.state;
    if (!state) return;
    const progress = state.progress || {};
    const step = progress.total ? ` · step ${progress.step}/${progress.total}` : '';
    const words = { queued: 'Waiting in the queue', submitted: 'Sent to ComfyUI', running: 'Rendering',
      completed: 'Done', failed: 'Failed', cancelled: 'Cancelled', interrupted: 'Stopped' };
    const said = state.job.waiting_for_comfy ? WAITING_TEXT
      : FINISHED.includes(state.status) && state.status !== 'completed' ? errorText(state.job) : '';
    this.status.textContent = `${/** @type {Record<string, string>} */ (words)[state.status] || state.status}${state.status === 'running' ? step : ''}${said ? `: ${said}` : ''}`;
    this.element.dataset.status = state.status;
  }

  /** Follows the stage's job and every job this session started. Returns a function that stops. */
  follow() {
    /** @param {string} type @param {any} payload @param {any} event */
    const news = (type, payload, event) => {
      if (!this.job || payload.id !== this.job.id) return;
      this.state = reduceJob(this.state, { type: /** @type {any} */ (type), payload, ts: event?.ts }) || this.state;
      if (type === 'jobs/preview' && typeof payload.seq === 'number') {
        this.image.src = `/api/jobs/${this.job.id}/preview?seq=${payload.seq}`;
        this.image.alt = 'Live preview';
        this.image.hidden = false;
        this.placeholder.hidden = true;
      }
      this.say();
    };
    const stops = [
      live.on('jobs/progress', (p, e) => news('jobs/progress', p, e)),
      live.on('jobs/preview', (p, e) => news('jobs/preview', p, e)),
      live.on('jobs/update', (p, e) => {
        news('jobs/update', p, e);
        if (this.tracked.has(p.id) && FINISHED.includes(p.status)) this.finished(p.id);
      }),
    ];
    return () => stops.forEach((stop) => stop());
  }

  /** @param {string} id */
  async finished(id) {
    this.tracked.delete(id);
    let job;
    try { job = await api.get(`/api/jobs/${encodeURIComponent(id)}`); } catch { return; }
    const first = this.items.length;
    for (const output of job.outputs || []) {
      if (!isPicture(output)) continue;
      this.items.push({ job, output });
      this.addThumb(this.items.length - 1);
    }
    if (this.job?.id !== id) return;
    this.state = reduceJob(this.state, { type: 'snapshot', payload: job }) || this.state;
    this.job = job;
    this.frame.classList.remove('busy');
    this.say();
    const shown = this.items[first];
    if (job.status === 'completed' && shown && shown.job.id === id) {
      this.image.src = shown.output.url;
      this.image.alt = job.summary?.prompt || shown.output.filename || 'Result';
      this.image.hidden = false;
      this.image.dataset.index = String(first);
      this.placeholder.hidden = true;
      this.actions.hidden = false;
    }
  }

  /** @param {number} index */
  addThumb(index) {
    const { job, output } = this.items[index];
    const small = output.thumbs?.['256'];
    this.strip.prepend(h('button', { type: 'button', class: 'strip-item', 'data-job': job.id,
      'aria-label': `Open result ${index + 1}${job.summary?.seed !== undefined && job.summary?.seed !== null ? `, seed ${job.summary.seed}` : ''}`,
      onclick: () => openItems(this.items, index, output.url) },
    h('img', { src: small || output.url, alt: '',
      srcset: small && output.thumbs['768'] ? `${small} 256w, ${output.thumbs['768']} 768w` : null, sizes: '120px' })));
  }

  open() {
    const index = Number(this.image.dataset.index);
    if (this.image.hidden || !Number.isInteger(index) || !this.items[index]) return;
    openItems(this.items, index, this.items[index].output.url);
  }

  /** Same values, new random seeds: one ("new seed") or several ("variations"). @param {number} count */
  async again(count) {
    if (!this.job) return;
    try {
      const answer = await api.post(`/api/jobs/${encodeURIComponent(this.job.id)}/again`, { seed: 'new', count });
      this.onAgain(answer.items);
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  clear() { replace(this.strip); this.items = []; }
}
