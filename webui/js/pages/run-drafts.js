// @ts-check
/**
 * What the Run form remembers: a draft per workflow in this browser (instant, survives a reload)
 * and on the server (`/api/run/last`, so it follows the person to their phone); whichever is newer
 * wins. Shared fields (prompt, negative, size, seed policy, model) travel between workflows.
 */
import { api } from '../lib/api.js';

const SAVE_DELAY_MS = 500;

/** @param {any} me */
const prefix = (me) => `studio.run.${me?.user?.id ?? me?.id ?? 'anon'}.`;

/** @param {string} key */
function read(key) {
  try { return JSON.parse(localStorage.getItem(key) || 'null'); } catch { return null; }
}

/** @param {string} key @param {any} value */
function write(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* private mode or full: the server copy stays */ }
}

/**
 * The role a field plays across workflows, or null when it is this workflow's own.
 * @param {any} spec @returns {string | null}
 */
export function sharedRole(spec) {
  if (spec.type === 'text' && !spec.picker) return /negative/i.test(`${spec.id} ${spec.name}`) ? 'negative' : 'prompt';
  if (spec.type === 'resolution_picker') return 'size';
  if (spec.type === 'seed') return 'seed';
  if (spec.type === 'checkpoint_picker' || spec.picker === 'checkpoints') return 'model';
  return null;
}

export class Drafts {
  /** @param {any} me */
  constructor(me) {
    this.prefix = prefix(me);
    /** @type {any} */
    this.server = { workflow_id: null, drafts: {} };
    /** @type {number | undefined} */
    this.timer = undefined;
    /** @type {(() => Promise<any>) | undefined} */
    this.pending = undefined;
  }

  async loadServer() {
    try { this.server = await api.get('/api/run/last'); } catch { /* offline: local drafts only */ }
    return this.server;
  }

  /** The workflow Run opens on: the newest of this browser's and the server's. */
  lastWorkflow() {
    const local = read(`${this.prefix}last`);
    const server = this.server.workflow_id ? { id: this.server.workflow_id, at: Date.parse(this.server.updated_at) } : null;
    if (local && (!server || local.at >= server.at)) return local.id;
    return server?.id ?? null;
  }

  /** @param {string} workflowId @returns {Record<string, any> | null} */
  valuesFor(workflowId) {
    const local = read(`${this.prefix}draft.${workflowId}`);
    const remote = this.server.drafts?.[workflowId];
    const remoteAt = remote ? Date.parse(remote.updated_at) : 0;
    if (local && local.at >= remoteAt) return local.values;
    return remote?.values ?? null;
  }

  /** @returns {Record<string, any>} role → value, from the last form saved in any workflow */
  shared() { return read(`${this.prefix}shared`) || {}; }

  /** @param {string} folder */
  lastModel(folder) { return read(`${this.prefix}model.${folder}`); }

  /**
   * Keeps the form's values now in this browser and, a moment later, on the server.
   * @param {string} workflowId @param {Record<string, any>} values @param {any[]} inputs
   */
  save(workflowId, values, inputs) {
    const at = Date.now();
    write(`${this.prefix}draft.${workflowId}`, { values, at });
    write(`${this.prefix}last`, { id: workflowId, at });
    const shared = this.shared();
    for (const spec of inputs) {
      const role = sharedRole(spec);
      if (role && values[spec.id] !== undefined) shared[role] = values[spec.id];
      if ((spec.picker || spec.type.endsWith('_picker')) && typeof values[spec.id] === 'string') {
        write(`${this.prefix}model.${spec.picker || spec.type}`, values[spec.id]);
      }
    }
    write(`${this.prefix}shared`, shared);
    clearTimeout(this.timer);
    this.pending = () => api.put(`/api/run/last/${encodeURIComponent(workflowId)}`, { values }).catch(() => {});
    this.timer = window.setTimeout(() => this.flush(), SAVE_DELAY_MS);
  }

  /** Forgets this workflow's draft here and on the server (reset to defaults). @param {string} workflowId */
  reset(workflowId) {
    try { localStorage.removeItem(`${this.prefix}draft.${workflowId}`); } catch { /* nothing kept */ }
    clearTimeout(this.timer);
    this.pending = undefined;
    return api.put(`/api/run/last/${encodeURIComponent(workflowId)}`, { values: {} }).catch(() => {});
  }

  /** Sends a pending save now (leaving the page must not lose the last keystrokes). */
  flush() {
    clearTimeout(this.timer);
    const pending = this.pending;
    this.pending = undefined;
    if (pending) pending();
  }
}
