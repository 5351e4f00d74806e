// @ts-check
/**
 * The HTTP API, as Studio itself describes it: /api/openapi.json rendered for people. Grouped by
 * tag; each operation shows its method, path, summary, parameters, body fields and answers. All
 * text goes in through h(), never as HTML: the document is data like any other answer.
 */
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';

/** @param {unknown} err */
const message = (err) => (err instanceof ApiError ? err.message : String(err));

const METHOD_ORDER = ['get', 'post', 'put', 'patch', 'delete'];

/**
 * A schema's `$ref` followed into components/schemas (one level at a time, cycles cut).
 * @param {any} doc @param {any} schema @param {Set<string>} [seen]
 */
function resolve(doc, schema, seen = new Set()) {
  const ref = schema && typeof schema.$ref === 'string' ? schema.$ref : null;
  if (!ref || seen.has(ref)) return schema || {};
  seen.add(ref);
  const name = ref.split('/').pop();
  return resolve(doc, doc.components?.schemas?.[name] || {}, seen);
}

/** A short type label: "integer ≤ 100", "string | null", "array of string". @param {any} doc @param {any} schema */
function typeOf(doc, schema) {
  const s = resolve(doc, schema);
  if (Array.isArray(s.anyOf)) return s.anyOf.map((/** @type {any} */ part) => typeOf(doc, part)).join(' | ');
  if (Array.isArray(s.enum)) return `one of ${s.enum.map((/** @type {any} */ v) => JSON.stringify(v)).join(', ')}`;
  if (schema?.$ref && s.title) return s.title;
  let label = s.type === 'array' ? `array of ${typeOf(doc, s.items || {})}` : (s.format === 'binary' ? 'file' : (s.type || 'any'));
  const limits = [];
  if (s.minimum !== undefined) limits.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined && s.maximum < 2 ** 53) limits.push(`≤ ${s.maximum}`);
  if (s.maxLength !== undefined) limits.push(`≤ ${s.maxLength} chars`);
  if (s.pattern) limits.push(`matching ${s.pattern}`);
  if (limits.length) label += ` (${limits.join(', ')})`;
  return label;
}

/** @param {string[]} headings @param {any[][]} rows */
function table(headings, rows) {
  return h('div', { class: 'table-scroll' }, h('table', { class: 'list' },
    h('thead', null, h('tr', null, headings.map((text) => h('th', null, text)))),
    h('tbody', null, rows.map((cells) => h('tr', null, cells.map((cell) => h('td', null, cell)))))));
}

/** @param {any} doc @param {any} operation */
function parameters(doc, operation) {
  const list = operation.parameters || [];
  if (!list.length) return null;
  return h('div', null, h('h4', null, 'Parameters'), table(['Name', 'In', 'Type', 'Required', 'About'],
    list.map((/** @type {any} */ p) => [h('code', null, p.name), p.in, typeOf(doc, p.schema || {}), p.required ? 'yes' : 'no',
      p.description || p.schema?.description || ''])));
}

/** @param {any} doc @param {any} operation */
function body(doc, operation) {
  const content = operation.requestBody?.content;
  if (!content) return null;
  const [media, { schema } = { schema: {} }] = Object.entries(content)[0] || [];
  const resolved = resolve(doc, schema);
  const required = new Set(resolved.required || []);
  const fields = Object.entries(resolved.properties || {});
  return h('div', null, h('h4', null, `Body (${media})`),
    fields.length
      ? table(['Field', 'Type', 'Required', 'Default', 'About'], fields.map(([name, field]) => [
        h('code', null, name), typeOf(doc, field), required.has(name) ? 'yes' : 'no',
        field.default === undefined ? '' : JSON.stringify(field.default), resolve(doc, field).description || '']))
      : h('p', { class: 'muted small' }, resolved.additionalProperties === false ? 'An empty JSON object (or nothing).' : 'Any JSON object.'));
}

/** @param {any} operation */
function answers(operation) {
  const rows = Object.entries(operation.responses || {}).map(([status, answer]) => {
    const media = Object.keys(answer.content || {}).join(', ');
    const about = answer.description || (answer.$ref ? 'An error: {"error": {"code", "message", "details"}}' : '');
    return [h('code', null, status), about, media || (answer.$ref ? 'application/json' : '')];
  });
  return h('div', null, h('h4', null, 'Answers'), table(['Status', 'Meaning', 'Content'], rows));
}

/** @param {any} doc @param {string} path @param {string} method @param {any} operation */
function operationView(doc, path, method, operation) {
  const details = h('details', { class: 'card api-operation', 'data-operation': operation.operationId },
    h('summary', null, h('span', { class: `badge method-${method}` }, method.toUpperCase()), ' ',
      h('code', { class: 'path' }, path), ' ', h('span', { class: 'muted' }, operation.summary || '')));
  let filled = false;
  details.addEventListener('toggle', () => {  // built when first opened: the whole API is long
    if (filled || !details.open) return;
    filled = true;
    details.append(...[
      operation.description ? h('p', null, operation.description) : null,
      operation.security && !operation.security.some((/** @type {any} */ s) => Object.keys(s).length) ? h('p', { class: 'small' }, 'No sign-in needed.') : null,
      parameters(doc, operation), body(doc, operation), answers(operation),
    ].filter(Boolean));
  });
  return details;
}

/** @param {any} doc @param {string} filter */
function render(doc, filter) {
  const wanted = filter.trim().toLowerCase();
  /** @type {Map<string, HTMLElement[]>} */
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHOD_ORDER) {
      const operation = item[method];
      if (!operation) continue;
      const text = `${method} ${path} ${operation.summary || ''} ${(operation.tags || []).join(' ')}`.toLowerCase();
      if (wanted && !text.includes(wanted)) continue;
      const tag = (operation.tags || ['other'])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag)?.push(operationView(doc, path, method, operation));
    }
  }
  if (!byTag.size) return [h('p', { class: 'empty-line' }, 'No operation matches.')];
  return [...byTag.keys()].sort().map((tag) => h('section', { class: 'stack', 'data-tag': tag },
    h('h3', null, tag), byTag.get(tag)));
}

/** @param {HTMLElement} main @param {{title: string}} context */
export function mount(main, context) {
  const list = h('div', { class: 'stack', id: 'api-operations' }, h('p', { class: 'muted' }, 'Loading…'));
  const search = /** @type {HTMLInputElement} */ (h('input', { type: 'search', id: 'api-filter', placeholder: 'Filter: path, method, words…',
    'aria-label': 'Filter operations' }));
  const intro = h('p', { id: 'api-intro' });
  replace(main, h('h1', null, context.title), intro,
    h('p', { class: 'small' }, 'Sign in with an API token (Account → API tokens) as ', h('code', null, 'Authorization: Bearer sst_…'),
      ' or ', h('code', null, 'X-API-Key'), '. Runs answer 202 with links to follow each job: ',
      h('code', null, 'GET /api/jobs/{id}?wait=30'), ' or the server-sent events at ', h('code', null, '/api/jobs/{id}/events'),
      '. Send an ', h('code', null, 'Idempotency-Key'), ' header to retry a run safely. The machine-readable document: ',
      h('a', { href: '/api/openapi.json', download: 'openapi.json' }, '/api/openapi.json'), ' (OpenAPI 3.1).'),
    h('div', { class: 'filters' }, search), list);
  let doc = /** @type {any} */ (null);
  search.addEventListener('input', () => { if (doc) replace(list, ...render(doc, search.value)); });
  api.get('/api/openapi.json').then((found) => {
    doc = found;
    const count = Object.values(found.paths || {}).reduce((n, item) => n + Object.keys(item).length, 0);
    replace(intro, `${found.info?.title || 'API'} ${found.info?.version || ''}: ${count} operations.`);
    replace(list, ...render(doc, search.value));
  }).catch((err) => replace(list, h('p', { class: 'error-line' }, message(err))));
}
