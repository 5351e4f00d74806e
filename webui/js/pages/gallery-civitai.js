// @ts-check
/**
 * CivitAI images and the gallery: the person's own NSFW level (a select on the Gallery page; CivitAI's
 * levels 1 PG, 2 PG-13, 4 R, 8 X, 16 XXX, PG only until they choose more), and a model's images on the
 * CivitAI page, each with "Save to gallery". No picture is loaded from CivitAI's hosts into the page:
 * an image is seen once Studio has saved it (and made its thumbnails), with its prompt and settings.
 */
import { api } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';

export const LEVELS = /** @type {[number, string][]} */ ([[1, 'PG'], [2, 'PG-13'], [4, 'R'], [8, 'X'], [16, 'XXX']]);
const levelName = (/** @type {number} */ n) => LEVELS.find(([v]) => v === n)?.[1] || String(n);

/** The Gallery's "CivitAI images up to …" select; `onChange` after the level is saved.
 * @param {() => void} onChange */
export function nsfwControl(onChange) {
  const pick = /** @type {HTMLSelectElement} */ (h('select', { id: 'gallery-nsfw', 'aria-label': 'CivitAI images shown up to',
    title: 'CivitAI images above this NSFW level are hidden (your setting alone)' },
  LEVELS.map(([v, name]) => h('option', { value: v }, `CivitAI: up to ${name}`))));
  api.get('/api/gallery/viewer').then(({ nsfw_level: level }) => { pick.value = String(level); }).catch(() => {});
  pick.addEventListener('change', async () => {
    try {
      await api.put('/api/gallery/viewer', { nsfw_level: Number(pick.value) });
      onChange();
    } catch (err) { toast(message(err), 'error'); }
  });
  return pick;
}

/** A model's images for the CivitAI page, a page at a time, those above the person's level hidden and counted.
 * @param {number} modelId */
export function modelImages(modelId) {
  const list = h('ul', { class: 'cv-images', id: 'cv-images', 'aria-label': 'The model’s images' });
  const said = h('p', { class: 'muted small', id: 'cv-images-said', 'aria-live': 'polite' }, 'Loading the model’s images…');
  const more = h('button', { type: 'button', class: 'link-button', hidden: true }, 'More images');
  let hidden = 0;
  /** @type {string | null} */
  let next = null;

  /** @param {any} image */
  function row(image) {
    const button = h('button', { type: 'button', class: 'link-button', 'data-image': image.id, disabled: image.saved || null,
      onclick: async () => {
        button.setAttribute('disabled', '');
        try {
          await api.post('/api/gallery/civitai', { image_id: image.id });
          button.textContent = 'In your gallery';
          toast('Saved into your gallery with its prompt and settings.', 'success');
        } catch (err) {
          button.removeAttribute('disabled');
          toast(message(err), 'error');
        }
      } }, image.saved ? 'In your gallery' : 'Save to gallery');
    return h('li', { class: 'cv-image', 'data-id': image.id },
      h('div', { class: 'row cv-image-head' }, h('strong', null, `Image ${image.id}`),
        h('span', { class: 'badge' }, levelName(image.nsfw_level)),
        image.width && image.height ? h('span', { class: 'muted small' }, `${image.width}×${image.height}`) : null, button),
      image.prompt ? h('p', { class: 'small cv-image-prompt' }, image.prompt) : h('p', { class: 'muted small' }, 'No prompt given.'));
  }

  async function load() {
    try {
      const page = await api.get(`/api/civitai/models/${modelId}/images${next ? `?cursor=${encodeURIComponent(next)}` : ''}`);
      list.append(...page.items.map(row));
      hidden += page.hidden;
      next = page.next;
      more.hidden = !next;
      said.textContent = [list.children.length ? '' : 'No images to show.',
        hidden ? `${hidden} hidden by your NSFW setting (up to ${levelName(page.level)}; change it on the Gallery page).` : '']
        .filter(Boolean).join(' ');
    } catch (err) { said.textContent = message(err); }
  }
  more.addEventListener('click', load);
  load();
  return h('div', { class: 'cv-images-wrap' }, h('h3', null, 'Images'), said, list, more);
}
