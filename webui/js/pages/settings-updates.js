// @ts-check
/**
 * Settings → Updates (admins): what runs, what the repository has, per component; the changelog;
 * "check now"; the chosen components updated by the supervisor (maintenance mode, a new release,
 * a restart, a rollback when it fails); the last update's conflicts with the person's own edits.
 */
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { toast } from '../lib/toast.js';

const LABELS = /** @type {Record<string, string>} */ ({
  backend: 'Backend (Studio)', frontend: 'Web UI', models: 'Models catalog', loras: 'LoRA catalog',
  llm_models: 'LLM catalog', workflows: 'Workflows',
});
const STATES = /** @type {Record<string, string>} */ ({
  accepted: 'Starting…', waiting_for_jobs: 'Waiting for running jobs to finish…', preparing: 'Preparing the new version…',
  switching: 'Switching to the new version…', health_check: 'Starting the new version…', finishing: 'Merging catalogs and workflows…',
  done: 'Done', failed: 'Failed, nothing changed', rolled_back: 'Rolled back', interrupted: 'Interrupted, nothing changed',
  nothing_to_do: 'Nothing to update',
});
const RUNNING = ['accepted', 'waiting_for_jobs', 'preparing', 'switching', 'health_check', 'finishing'];
const POLL_MS = 2000;

/** @param {any} value */
function shown(value) {
  return value === null || value === undefined ? '—' : String(value);
}

/** @returns {HTMLElement} the section; it hides itself for people who are not admins. */
export function mountUpdates() {
  const body = h('div', { class: 'stack updates-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const section = h('section', { class: 'card updates', 'aria-labelledby': 'updates-title' },
    h('h2', { id: 'updates-title' }, 'Updates'), body);
  /** @type {number | null} */
  let timer = null;

  /** @param {any} state */
  function render(state) {
    const last = state.last_update;
    const running = state.pending_request || (last && RUNNING.includes(last.state));
    /** @type {Set<string>} */
    const chosen = new Set(state.components.filter((/** @type {any} */ row) => row.update).map((/** @type {any} */ row) => row.component));
    const waitJobs = h('input', { type: 'checkbox', id: 'updates-wait', checked: true });
    const applyButton = h('button', { class: 'button', type: 'button', id: 'updates-apply',
      disabled: running || !state.supervised || !state.available || Boolean(state.blocked) }, 'Update now');
    const errorLine = h('p', { class: 'error-line', role: 'alert' });

    const rows = state.components.map((/** @type {any} */ row) => h('tr', { 'data-component': row.component },
      h('td', null, h('input', { type: 'checkbox', id: `update-${row.component}`, checked: row.update,
        disabled: !row.update || running, 'aria-label': `Update ${LABELS[row.component] || row.component}`,
        onchange: (/** @type {Event} */ event) => {
          const box = /** @type {HTMLInputElement} */ (event.target);
          if (box.checked) chosen.add(row.component); else chosen.delete(row.component);
          applyButton.toggleAttribute('disabled', chosen.size === 0 || running || !state.supervised);
        } })),
      h('td', null, h('label', { for: `update-${row.component}` }, LABELS[row.component] || row.component)),
      h('td', { class: 'num' }, shown(row.local)),
      h('td', { class: 'num' }, shown(row.remote)),
      h('td', null, row.update ? h('span', { class: 'badge update-new' }, 'newer') : h('span', { class: 'muted' }, 'same'))));

    applyButton.addEventListener('click', async () => {
      errorLine.textContent = '';
      try {
        await api.post('/api/updates/apply', { components: [...chosen], wait_for_jobs: /** @type {HTMLInputElement} */ (waitJobs).checked });
        toast('Update started: Studio restarts when it is ready.', 'success');
        load();
      } catch (err) {
        errorLine.textContent = err instanceof ApiError ? err.message : String(err);
      }
    });

    const remote = state.remote;
    replace(body,
      h('p', { class: 'updates-summary' },
        `Installed: ${shown(state.local.app_version)}`, state.current_release ? ` (release ${state.current_release})` : '',
        ` · image runtime v${state.runtime_version}`,
        remote ? ` · last checked ${remote.checked_at} UTC: ${remote.app_version}` : ' · not checked yet'),
      !state.configured ? h('p', { class: 'warn-line' }, 'REPO_URL is not set, so there is nowhere to look for updates.') : null,
      state.configured && !state.supervised ? h('p', { class: 'muted' },
        'Studio is not running under the container\u2019s supervisor, so it cannot restart itself: updates can be checked here, not applied.') : null,
      state.blocked ? h('p', { class: 'warn-line', role: 'status' }, state.blocked) : null,
      h('div', { class: 'row' }, h('button', { class: 'link-button', type: 'button', id: 'updates-check', disabled: !state.configured || running,
        onclick: async (/** @type {Event} */ event) => {
          const button = /** @type {HTMLButtonElement} */ (event.currentTarget);
          button.disabled = true;
          button.textContent = 'Checking…';
          try {
            render(await api.post('/api/updates/check'));
            toast('Checked for updates.', 'success');
          } catch (err) {
            errorLine.textContent = err instanceof ApiError ? err.message : String(err);
            button.disabled = false;
            button.textContent = 'Check now';
          }
        } }, 'Check now')),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'updates-table' },
        h('thead', null, h('tr', null, h('th', { scope: 'col', 'aria-label': 'Choose' }),
          h('th', { scope: 'col' }, 'Component'), h('th', { scope: 'col' }, 'Here'), h('th', { scope: 'col' }, 'Available'),
          h('th', { scope: 'col' }, 'Status'))),
        h('tbody', null, rows))) : null,
      remote && remote.changelog ? h('details', { class: 'updates-changelog' }, h('summary', null, 'Changelog'),
        h('pre', null, remote.changelog)) : null,
      rows.length ? h('div', { class: 'row updates-actions' },
        h('label', { class: 'check', for: 'updates-wait' }, waitJobs,
          ` Let running jobs finish first${state.running_jobs ? ` (${state.running_jobs} running)` : ''}`),
        applyButton) : null,
      errorLine,
      last ? lastUpdate(last) : null);

    if (timer !== null) window.clearTimeout(timer);
    timer = running && section.isConnected ? window.setTimeout(load, POLL_MS) : null;
  }

  /** @param {any} last */
  function lastUpdate(last) {
    const conflicts = last.conflicts || [];
    return h('div', { class: 'updates-last', 'data-state': last.state },
      h('h3', null, 'Last update'),
      h('p', { class: last.state === 'done' ? 'ok-line' : (RUNNING.includes(last.state) ? '' : 'warn-line'), role: 'status' },
        STATES[last.state] || last.state, last.message ? `: ${last.message}` : ''),
      conflicts.length ? h('div', null,
        h('p', null, 'These were changed both here and in the update. Your version was kept; compare and edit by hand:'),
        h('ul', { class: 'updates-conflicts' }, conflicts.map((/** @type {any} */ c) =>
          h('li', null, h('code', null, c.path), ` — ${c.item}: ${c.message}`)))) : null);
  }

  function load() {
    api.get('/api/updates').then(render).catch((err) => {
      if (err instanceof ApiError && err.status === 403) {
        section.hidden = true;  // admins only: nothing to show anyone else
        return;
      }
      replace(body, h('p', { class: 'error-line' }, err instanceof ApiError ? err.message : String(err)));
    });
  }

  load();
  return section;
}
