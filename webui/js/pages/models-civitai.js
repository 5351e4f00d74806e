// @ts-check
/** What CivitAI says about the files on the Models and LoRAs pages: name and version, base model,
 * trained words (copied with one click), the preview Studio keeps, a link to the model's page and a
 * "newer version" flag. Read from Studio (GET /api/civitai/metadata), never from CivitAI itself, so
 * the page never waits on it; an admin can ask for a fresh lookup, which runs in the background. */
import { api } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';

/** @typedef {{items: Record<string, any>, status: any}} Metadata */

/** @returns {Promise<Metadata>} */
export async function loadMetadata() {
  try {
    return await api.get('/api/civitai/metadata');
  } catch {
    return { items: {}, status: null }; // the catalogs still show without it
  }
}

/** The small picture at the start of a row (or nothing). @param {any} info @param {string} name */
export function previewCell(info, name) {
  return info?.preview
    ? h('img', { class: 'civitai-preview', src: info.preview, alt: `Preview of ${name}`, loading: 'lazy', width: 48, height: 48 })
    : h('span', { class: 'civitai-preview empty', 'aria-hidden': 'true' });
}

/** @param {string} word */
async function copyWord(word) {
  try {
    await navigator.clipboard.writeText(word);
    toast(`Copied “${word}”.`, 'success');
  } catch {
    toast(word, 'info'); // no clipboard (plain HTTP): at least show it to copy by hand
  }
}

/** The lines under a file's name: what CivitAI calls it, its trained words, a newer version.
 * @param {any} info */
export function civitaiLines(info) {
  if (!info) return null;
  if (info.status !== 'found') return h('div', { class: 'muted small civitai-line' }, 'Not on CivitAI');
  const title = [info.model_name, info.version_name].filter(Boolean).join(' · ');
  return h('div', { class: 'civitai-info small' },
    h('div', { class: 'civitai-line' },
      info.url ? h('a', { href: info.url, target: '_blank', rel: 'noopener noreferrer', class: 'civitai-link' }, title) : h('span', null, title),
      info.base_model ? h('span', { class: 'badge folder-badge' }, info.base_model) : null,
      info.update_available ? h('a', { class: 'badge civitai-update', href: info.update_url || info.url, target: '_blank', rel: 'noopener noreferrer',
        title: `CivitAI has a newer version: ${info.latest_version_name || ''}` }, `newer: ${info.latest_version_name || 'version'}`) : null),
    info.trained_words?.length ? h('div', { class: 'trained-words', 'aria-label': 'Trained words (click to copy)' },
      info.trained_words.map((/** @type {string} */ w) => h('button', { type: 'button', class: 'chip trained-word', title: 'Copy', onclick: () => copyWord(w) }, w))) : null);
}

/** The admin's "Look up on CivitAI" and what the last lookup said. @param {Metadata | null} meta @param {boolean} admin */
export function civitaiBar(meta, admin) {
  const status = meta?.status;
  const said = status?.last_error ? h('span', { class: 'error-line small' }, `CivitAI: ${status.last_error}`)
    : status?.running ? h('span', { class: 'muted small' }, 'Looking files up on CivitAI…')
      : status?.last_run_at ? h('span', { class: 'muted small' }, `Looked up on CivitAI ${new Date(status.last_run_at).toLocaleString()}`) : null;
  const button = admin ? h('button', { class: 'button secondary', id: 'civitai-refresh', onclick: async () => {
    try {
      await api.post('/api/civitai/metadata/refresh', { force: true });
      toast('Looking your files up on CivitAI in the background.', 'info');
    } catch (err) {
      toast(message(err), 'error');
    }
  } }, 'Look up on CivitAI') : null;
  return said || button ? h('div', { class: 'row civitai-bar', id: 'civitai-bar' }, button, said) : null;
}

/* Trained words in the Run form: run-form.js would fetch the same GET /api/civitai/metadata and,
 * for the LoRA a lora_picker has chosen, look up its SHA-256 (from GET /api/models) and offer
 * info.trained_words as chips that append to the prompt. That hook is not built here. */
