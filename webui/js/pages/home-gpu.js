// @ts-check
// The System page's GPU card: each GPU's memory and who holds it (ComfyUI, the LLM), from /api/llm/arbiter.
// The System page re-renders its grid often; this card is one element kept across those renders, that
// follows the LLM's events and the telemetry itself, and lets go of them once it is off the page.
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes, percent } from '../lib/format.js';
import { live } from '../lib/live.js';

const POLICY_NAMES = /** @type {Record<string, string>} */ ({
  share: 'share (both stay loaded)',
  take_turns: 'take turns (the LLM leaves for jobs)',
  llm_never: 'LLM never during jobs',
});
const PHASES = /** @type {Record<string, string>} */ ({
  waiting_for_comfyui: 'The LLM waits for ComfyUI’s queue to drain before it loads.',
  loading: 'The LLM model is loading.',
  stopping_for_job: 'The LLM is being stopped so that a ComfyUI job can have the GPU.',
});
const REFRESH_MS = 5000;

/** @type {HTMLElement | null} */
let card = null;

/** @param {any} view */
function render(view) {
  if (!card) return;
  const gpus = view.gpus || [];
  const holders = view.holders || [];
  replace(card,
    h('h2', null, 'GPU memory'),
    gpus.length
      ? gpus.map((/** @type {any} */ g) => h('div', { class: 'meter' },
        h('div', { class: 'meter-head' }, h('span', null, g.name || `GPU ${g.index}`),
          h('span', { class: 'muted' }, `${formatBytes(g.vram_used)} / ${formatBytes(g.vram_total)}`)),
        h('div', { class: 'meter-bar', role: 'progressbar', 'aria-label': `VRAM ${g.name}`,
          'aria-valuenow': percent(g.vram_used, g.vram_total), 'aria-valuemin': 0, 'aria-valuemax': 100 },
        h('div', { class: 'meter-fill', style: { width: `${percent(g.vram_used, g.vram_total)}%` } }))))
      : h('p', { class: 'muted' }, 'No GPU reported (by NVML or ComfyUI).'),
    h('h3', { class: 'small' }, 'Loaded'),
    holders.length
      ? h('ul', { class: 'gpu-holders' }, holders.map((/** @type {any} */ who) => h('li', { 'data-who': who.who },
        h('span', null, who.label, who.state && who.state !== 'ready' ? ` (${who.state})` : ''),
        h('span', { class: 'muted', title: who.detail }, `${who.approximate ? 'about ' : ''}${formatBytes(who.bytes)}`))))
      : h('p', { class: 'muted' }, 'Nothing Studio knows of.'),
    view.resume_model ? h('p', { class: 'muted small' }, `${view.resume_model} loads again with the next chat.`) : null,
    PHASES[view.phase] ? h('p', { class: 'small', role: 'status' }, PHASES[view.phase]) : null,
    view.last_error ? h('p', { class: 'error-line' }, view.last_error) : null,
    h('p', { class: 'muted small' }, `Policy: ${POLICY_NAMES[view.policy] || view.policy}; a job waits up to `
      + `${Math.round(view.job_wait_s)} s for a chat.`));
}

/** Lets go of everything once the card has left the page (checked whenever something would redraw it). */
function gone() {
  if (card && card.isConnected) return false;
  stops.forEach((stop) => stop());
  stops = [];
  clearInterval(timer);
  card = null;
  return true;
}

/** @type {Array<() => void>} */
let stops = [];
/** @type {ReturnType<typeof setInterval> | undefined} */
let timer;
let lastLoad = 0;

async function load() {
  if (gone()) return;
  lastLoad = Date.now();
  try {
    render(await api.get('/api/llm/arbiter'));
  } catch (err) {
    if (card) replace(card, h('h2', null, 'GPU memory'), h('p', { class: 'error-line' }, err instanceof ApiError ? err.message : String(err)));
  }
}

/** The card, the same element on every call while it stays on the page. @returns {HTMLElement} */
export function gpuCard() {
  if (card) return card;
  card = h('section', { class: 'card', id: 'gpu-card' }, h('h2', null, 'GPU memory'), h('p', { class: 'muted' }, 'Loading…'));
  stops = [
    live.on('llm/server', () => load()),
    live.on('system/telemetry', () => { if (Date.now() - lastLoad > REFRESH_MS) load(); }),
  ];
  timer = setInterval(() => { if (!gone() && Date.now() - lastLoad > REFRESH_MS) load(); }, REFRESH_MS);
  queueMicrotask(() => load());
  return card;
}
