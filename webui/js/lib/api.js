// @ts-check
/**
 * The only place that calls fetch. Every Studio error body
 * `{"error": {"code", "message", "details"}}` becomes an ApiError, so pages show
 * `err.message` and never a raw status line.
 */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message @param {any} [details] */
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** Field-level messages for forms: `{field: message}`. */
  get fields() {
    return (this.details && this.details.fields) || {};
  }
}

/** @type {string | null} */
let csrfToken = null;

/** Cookie-signed-in pages send this with every write; Studio refuses writes without it. */
/** @param {string | null} token */
export function setCsrfToken(token) {
  csrfToken = token;
}

/** For the few writes that are not JSON (file uploads through FormData). */
export function getCsrfToken() {
  return csrfToken || '';
}

/**
 * @param {string} method
 * @param {string} path
 * @param {any} [body]
 * @returns {Promise<any>}
 */
export async function request(method, path, body) {
  /** @type {RequestInit} */
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  /** @type {RequestInit} */
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'network_error', 'Studio cannot be reached. Check that it is running.');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const error = data && data.error;
    if (response.status === 401 && !path.startsWith('/api/auth/') && !location.pathname.startsWith('/login')) {
      // The session ended (signed out elsewhere, expired, revoked): back to the sign-in page.
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    }
    if (error && typeof error.message === 'string') {
      throw new ApiError(response.status, error.code || 'error', error.message, error.details);
    }
    throw new ApiError(response.status, 'http_error', `Studio answered ${response.status}.`);
  }
  return data;
}

/**
 * A POST whose answer is read as it arrives (server-sent events): the Response itself, or an
 * ApiError for a refusal. `signal` aborts it: closing the connection is how a generation stops.
 * @param {string} path @param {any} body @param {AbortSignal} signal
 * @returns {Promise<Response>}
 */
export async function streamPost(path, body, signal) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'text/event-stream', 'Content-Type': 'application/json' };
  if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin', signal });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', 'Studio cannot be reached. Check that it is running.');
  }
  if (!response.ok) {
    let error = null;
    try { error = (await response.json()).error; } catch { error = null; }
    throw new ApiError(response.status, error?.code || 'http_error', typeof error?.message === 'string'
      ? error.message : `Studio answered ${response.status}.`, error?.details);
  }
  return response;
}

export const api = {
  /** @param {string} path */
  get: (path) => request('GET', path),
  /** @param {string} path @param {any} [body] */
  post: (path, body) => request('POST', path, body ?? {}),
  /** @param {string} path @param {any} [body] */
  put: (path, body) => request('PUT', path, body ?? {}),
  /** @param {string} path @param {any} [body] */
  patch: (path, body) => request('PATCH', path, body ?? {}),
  /** @param {string} path */
  del: (path) => request('DELETE', path),
};
