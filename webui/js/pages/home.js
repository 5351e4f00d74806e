// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes, formatDuration, percent } from '../lib/format.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { gpuCard } from './home-gpu.js';

/** @param {string} label @param {number} used @param {number} total @param {string} [text] */
function meter(label, used, total, text) {
  const pct = percent(used, total);
  return h('div', { class: 'meter' },
    h('div', { class: 'meter-head' }, h('span', null, label), h('span', { class: 'muted' }, text ?? `${pct}%`)),
    h('div', { class: 'meter-bar', role: 'progressbar', 'aria-valuenow': pct, 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-label': label },
    h('div', { class: `meter-fill${pct >= 90 ? ' meter-high' : ''}`, style: { width: `${pct}%` } })));
}

/** @param {any} comfy @param {boolean} admin */
function comfyCard(comfy, admin) {
  const connected = comfy.socket === 'connected';
  const body = [];
  body.push(h('p', { class: 'comfy-state', 'data-state': connected ? 'connected' : 'disconnected' },
    h('span', { class: 'dot' }), connected ? 'Connected' : 'Not connected'));
  body.push(h('dl', { class: 'facts' },
    h('dt', null, 'Address'), h('dd', null, comfy.url),
    h('dt', null, 'Version'), h('dd', { id: 'comfy-version' }, comfy.version || '–'),
    h('dt', null, 'Queue'), h('dd', { id: 'comfy-queue' }, comfy.queue_remaining ?? '–'),
    h('dt', null, 'Devices'), h('dd', null, (comfy.devices || []).map((/** @type {any} */ d) => d.name).join(', ') || '–')));
  if (!connected && comfy.error) {
    body.push(h('p', { class: 'error-line' }, comfy.error));
    // Where a person changes the address: the Settings page (applied without a restart).
    body.push(h('p', { class: 'muted', id: 'comfy-hint' }, admin
      ? ['Start ComfyUI, or set its address in ', h('a', { href: '/settings', 'data-link': true }, 'Settings'), '.']
      : 'Start ComfyUI, or ask an admin to set its address in Settings.'));
  }
  const free = h('button', { class: 'button', disabled: !connected, onclick: async () => {
    free.setAttribute('disabled', '');
    try {
      await api.post('/api/comfy/free', { unload_models: true, free_memory: true });
      toast('ComfyUI will unload models and free memory after the current job.', 'success');
    } catch (err) {
      toast(err instanceof ApiError ? err.message : String(err), 'error');
    } finally {
      free.removeAttribute('disabled');
    }
  } }, 'Free VRAM');
  // Unloading models slows everyone's next job: an admin's call.
  return h('section', { class: 'card', id: 'comfy-card' }, h('h2', null, 'ComfyUI'), body,
    admin ? h('div', { class: 'actions' }, free) : null);
}

/** @param {any} t */
function machineCard(t) {
  const gpus = t.gpus || [];
  return h('section', { class: 'card', id: 'machine-card' },
    h('h2', null, 'Machine'),
    meter(`CPU (${t.cpu_count} cores)`, t.cpu_percent, 100),
    meter('RAM', t.ram_used, t.ram_total, `${formatBytes(t.ram_used)} / ${formatBytes(t.ram_total)}`),
    gpus.length
      ? gpus.map((/** @type {any} */ g) => [
        g.utilization_percent !== null ? meter(`GPU ${g.name}`, g.utilization_percent, 100) : null,
        meter(`VRAM ${g.name}`, g.vram_used, g.vram_total, `${formatBytes(g.vram_used)} / ${formatBytes(g.vram_total)}`),
      ])
      : h('p', { class: 'muted' }, 'No GPU reported (by NVML or ComfyUI).'),
    meter('Disk (data folder)', t.disk.used, t.disk.total, `${formatBytes(t.disk.free)} free of ${formatBytes(t.disk.total)}`));
}

/** The models folder: free space, bytes per model folder, the largest files. @param {any} d */
function modelsDiskCard(d) {
  const biggest = d.by_category.length ? d.by_category[0].bytes : 0;
  return h('section', { class: 'card', id: 'models-disk-card' }, h('h2', null, 'Models disk'),
    meter('Free space', d.used, d.total, `${formatBytes(d.free)} free of ${formatBytes(d.total)}`),
    h('p', { class: 'muted small path' }, d.root),
    h('div', { class: 'category-bars' }, d.by_category.slice(0, 8).map((/** @type {any} */ c) => h('div', { class: 'meter' },
      h('div', { class: 'meter-head' }, h('span', null, `${c.category} (${c.files})`), h('span', { class: 'muted' }, formatBytes(c.bytes))),
      h('div', { class: 'meter-bar' }, h('div', { class: 'meter-fill share', style: { width: `${percent(c.bytes, biggest)}%` } }))))),
    d.largest.length ? h('details', null, h('summary', null, 'Largest files'),
      h('ol', { class: 'largest' }, d.largest.map((/** @type {any} */ f) => h('li', null, h('span', { class: 'path' }, f.path), ` · ${formatBytes(f.size)}`))))
      : h('p', { class: 'muted' }, 'No models yet: see Models.'),
    d.hashing.pending ? h('p', { class: 'muted small' }, `Checking hashes: ${d.hashing.pending} left (${d.hashing.current})`) : null);
}

/** The System page: ComfyUI, the machine, the models disk and Studio itself, live. @param {HTMLElement} main @param {any} [context] */
export function mount(main, context) {
  const admin = context?.me?.user.role === 'admin';
  /** @type {any} */
  let status = null;
  /** @type {any} */
  let modelsDisk = null;
  const grid = h('div', { class: 'grid' });
  replace(main, h('h1', null, context?.title || 'System'), grid);

  function render() {
    if (!status) return;
    replace(grid,
      comfyCard(status.comfyui, admin),
      machineCard(status.telemetry),
      gpuCard(),
      modelsDisk ? modelsDiskCard(modelsDisk) : null,
      h('section', { class: 'card' }, h('h2', null, 'Studio'),
        h('dl', { class: 'facts' },
          h('dt', null, 'Version'), h('dd', null, status.studio.version),
          h('dt', null, 'Up for'), h('dd', null, formatDuration(status.studio.uptime_s)),
          h('dt', null, 'Data folder'), h('dd', { class: 'path' }, status.studio.data_dir))));
  }

  async function load() {
    try {
      [status, modelsDisk] = await Promise.all([api.get('/api/status'), api.get('/api/models/disk').catch(() => null)]);
      render();
    } catch (err) {
      replace(grid, h('p', { class: 'error-line' }, err instanceof ApiError ? err.message : String(err)));
    }
  }

  const stops = [
    live.on('comfy/connection', () => load()),
    live.on('downloads/finished', () => load()),
    live.on('comfy/queue', (p) => {
      if (!status) return;
      status.comfyui.queue_remaining = p.queue_remaining;
      const cell = document.getElementById('comfy-queue');
      if (cell) cell.textContent = String(p.queue_remaining);
    }),
    live.on('system/telemetry', (t) => {
      if (!status) return;
      status.telemetry = t;
      document.getElementById('machine-card')?.replaceWith(machineCard(t));
    }),
  ];
  const onResync = () => load();
  live.addEventListener('resync', onResync);
  load();
  return () => { stops.forEach((stop) => stop()); live.removeEventListener('resync', onResync); };
}
