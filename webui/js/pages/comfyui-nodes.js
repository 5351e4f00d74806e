// @ts-check
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes } from '../lib/format.js';
import { message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';

/** Words for each step of an install, as the nodepacks/install event names them. */
const STEPS = {
  queued: 'Waiting to start', started: 'Checking the staged copy', pip: 'Installing requirements with pip',
  install_py: 'Running install.py', moving: 'Moving the pack into custom_nodes', restarting: 'Restarting ComfyUI',
  done: 'Installed', failed: 'Failed',
};

/** @param {string | null | undefined} commit */
const short = (commit) => (commit ? commit.slice(0, 10) : '');

/** @param {any} pack @param {boolean} admin @param {(name: string) => void} onAside */
function packRow(pack, admin, onAside) {
  const origin = pack.git?.remote || pack.source?.url;
  const link = origin && /^https:\/\//.test(origin)
    ? h('a', { href: origin, target: '_blank', rel: 'noopener noreferrer' }, origin) : origin || '';
  const version = pack.source?.version ? `v${pack.source.version}` : short(pack.git?.commit || pack.source?.commit);
  const state = pack.set_aside ? 'set aside' : !pack.enabled ? 'disabled' : !pack.folder ? 'reported by ComfyUI'
    : pack.node_count ? 'loaded' : 'no nodes loaded';
  return h('tr', { 'data-pack': pack.name },
    h('td', null, h('strong', null, pack.name), h('div', { class: 'muted small np-origin' }, link)),
    h('td', null, pack.node_count ? h('details', null, h('summary', null, `${pack.node_count} node${pack.node_count === 1 ? '' : 's'}`),
      h('p', { class: 'small np-nodes' }, pack.nodes.join(', '))) : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'np-version' }, h('code', null, version)),
    h('td', null, h('span', { class: pack.set_aside || !pack.enabled ? 'muted' : pack.node_count ? 'ready' : 'np-warn' }, state),
      admin && pack.folder && pack.enabled && !pack.set_aside
        ? h('div', null, h('button', { class: 'link-button np-aside', 'data-action': 'set-aside', onclick: () => onAside(pack.name) }, 'Set aside'))
        : null));
}

/**
 * The confirmation for a plan: what will be fetched and what will run, then Install or Cancel.
 * @param {HTMLElement} box @param {any} plan @param {() => void} [onDone]
 */
function confirmation(box, plan, onDone) {
  const status = h('p', { class: 'np-status', role: 'status' });
  const install = h('button', { class: 'button', 'data-action': 'confirm-install', onclick: async () => {
    install.setAttribute('disabled', '');
    try {
      await api.post('/api/nodepacks/install', { token: plan.token });
      status.textContent = STEPS.queued;
      follow(status, onDone);
    } catch (err) {
      install.removeAttribute('disabled');
      status.textContent = message(err);
      status.className = 'np-status error-line';
    }
  } }, `Install ${plan.name}`);
  const what = plan.source === 'git'
    ? [h('dt', null, 'Repository'), h('dd', null, plan.url), h('dt', null, 'Commit'),
      h('dd', null, h('code', { class: 'np-commit' }, plan.commit), plan.tag ? ` (tag ${plan.tag})` : '')]
    : [h('dt', null, 'Registry'), h('dd', null, `${plan.registry_id} ${plan.version}`, plan.deprecated ? ' — deprecated' : ''),
      h('dt', null, 'Page'), h('dd', null, plan.url)];
  replace(box, h('div', { class: 'card np-plan', 'data-plan': plan.name },
    h('h3', null, `Install ${plan.name}?`),
    h('dl', { class: 'np-facts' }, what,
      h('dt', null, 'Folder'), h('dd', null, `custom_nodes/${plan.name}`),
      h('dt', null, 'Size'), h('dd', null, `${formatBytes(plan.size_bytes)} in ${plan.files} file${plan.files === 1 ? '' : 's'}`)),
    h('h4', null, plan.requirements.length ? 'pip will install (into ComfyUI\u2019s Python)' : 'No requirements.txt lines'),
    plan.requirements.length ? h('pre', { class: 'code np-requirements' }, plan.requirements.join('\n')) : null,
    plan.requirement_options.length ? h('p', { class: 'np-warn' }, `pip options in requirements.txt: ${plan.requirement_options.join(' ')}`) : null,
    plan.install_py ? [h('h4', null, 'install.py will run'), h('pre', { class: 'code np-install-py' }, plan.install_py.join('\n'))] : null,
    h('p', { class: 'muted small' }, plan.will_restart ? 'ComfyUI restarts afterwards; running jobs are interrupted.'
      : 'Restart ComfyUI afterwards to load the pack.'),
    status,
    h('div', { class: 'actions' }, install,
      h('button', { class: 'link-button', 'data-action': 'cancel-install', onclick: () => replace(box) }, 'Cancel'))));
}

/** Polls the install until it is done (events also arrive, but a poll survives a dropped socket). */
function follow(/** @type {HTMLElement} */ status, /** @type {(() => void) | undefined} */ onDone) {
  const tick = async () => {
    try {
      const { install, lines } = await api.get('/api/nodepacks/install');
      if (!install) return;
      status.textContent = `${STEPS[/** @type {keyof STEPS} */ (install.step)] || install.step}${install.error ? ` — ${install.error}` : ''}`;
      if (install.state === 'running') { setTimeout(tick, 700); return; }
      status.className = `np-status ${install.state === 'done' ? 'ready' : 'error-line'}`;
      if (install.state === 'failed' && lines.length) status.after(h('pre', { class: 'code np-log' }, lines.slice(-40).join('\n')));
      toast(install.state === 'done' ? `${install.name} installed.` : `${install.name} was not installed.`, install.state === 'done' ? 'success' : 'error');
      onDone?.();
    } catch (err) {
      status.textContent = message(err);
    }
  };
  tick();
}

/**
 * Plans an install (a body for POST /api/nodepacks/plan) and shows its confirmation in `box`.
 * Used by this section's form and by a workflow's "missing node packs" list.
 * @param {HTMLElement} box @param {any} body @param {() => void} [onDone]
 */
export async function planInstall(box, body, onDone) {
  replace(box, h('p', { class: 'muted', role: 'status' }, 'Fetching the pack to see what it will run…'));
  try {
    confirmation(box, await api.post('/api/nodepacks/plan', body), onDone);
  } catch (err) {
    replace(box, h('p', { class: 'error-line', role: 'alert' }, message(err)));
  }
}

/** @param {HTMLElement} box @param {() => void} onDone */
function installForm(box, onDone) {
  const source = h('select', { name: 'source', id: 'np-source' }, h('option', { value: 'git' }, 'Git repository'),
    h('option', { value: 'registry' }, 'Comfy Registry'));
  const git = h('div', { class: 'row np-git' },
    h('label', null, 'Repository URL', h('input', { name: 'url', id: 'np-url', placeholder: 'https://github.com/owner/repo', maxlength: 2000 })),
    h('label', null, 'Commit or tag', h('input', { name: 'commit', id: 'np-commit', placeholder: '40-character commit or v1.2.0', maxlength: 100 })));
  const registry = h('div', { class: 'row np-registry', hidden: true },
    h('label', null, 'Registry id', h('input', { name: 'id', id: 'np-id', placeholder: 'comfyui-impact-pack', maxlength: 100 })),
    h('label', null, 'Version (empty: latest)', h('input', { name: 'version', id: 'np-version', maxlength: 64 })));
  source.addEventListener('change', () => {
    git.hidden = /** @type {HTMLSelectElement} */ (source).value !== 'git';
    registry.hidden = !git.hidden;
  });
  return h('form', { class: 'stack np-form', id: 'np-form', onsubmit: (/** @type {Event} */ e) => {
    e.preventDefault();
    const values = Object.fromEntries(new FormData(/** @type {HTMLFormElement} */ (e.target)));
    const body = values.source === 'git' ? { source: 'git', url: values.url, commit: values.commit }
      : { source: 'registry', id: values.id, version: values.version || null };
    planInstall(box, body, onDone);
  } },
  h('div', { class: 'row' }, h('label', null, 'From', source)), git, registry,
  h('div', { class: 'actions' }, h('button', { class: 'button', type: 'submit' }, 'Check what it will run')));
}

/**
 * The node packs section of the ComfyUI page: what is installed, and for admins install and set aside.
 * @param {HTMLElement} container @returns {() => void} stops listening
 */
export function renderNodePacks(container) {
  const listBox = h('div', { class: 'np-list' });
  const planBox = h('div', { class: 'np-plan-box', id: 'np-plan-box' });
  const note = h('p', { class: 'muted small' });
  const formBox = h('div');

  async function setAside(/** @type {string} */ name) {
    if (!window.confirm(`Set ${name} aside? It moves to custom_nodes/.disabled and ComfyUI restarts.`)) return;
    try {
      const answer = await api.post(`/api/nodepacks/${encodeURIComponent(name)}/uninstall`);
      toast(answer.warning || `${name} set aside.`, answer.warning ? 'error' : 'success');
      load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  async function load() {
    try {
      const answer = await api.get('/api/nodepacks');
      note.textContent = [!answer.comfyui_dir_set ? 'Studio does not know ComfyUI\u2019s folder (COMFYUI_DIR), so only what ComfyUI reports is listed.' : '',
        !answer.comfy_reachable ? 'ComfyUI is not answering: the nodes each pack provides are unknown.' : ''].filter(Boolean).join(' ');
      if (answer.can_manage && !formBox.childElementCount) replace(formBox, h('h3', null, 'Install a node pack'), installForm(planBox, load));
      replace(listBox, answer.packs.length
        ? h('div', { class: 'table-scroll' }, h('table', { class: 'list np-table' },
          h('thead', null, h('tr', null, ['Pack', 'Nodes', 'Version', 'State'].map((t) => h('th', null, t)))),
          h('tbody', null, answer.packs.map((/** @type {any} */ p) => packRow(p, answer.can_manage, setAside)))))
        : h('p', { class: 'muted' }, 'No custom node packs are installed.'));
    } catch (err) {
      replace(listBox, h('p', { class: 'error-line' }, message(err)));
    }
  }

  replace(container, h('section', { class: 'card np-section', id: 'node-packs' },
    h('h2', null, 'Node packs'), note, listBox, formBox, planBox));
  load();
  return live.on('nodepacks/install', (/** @type {any} */ payload) => {
    if (payload?.state !== 'running') load();
  });
}

/**
 * An admin's Install button for a missing node's pack (a workflow's "missing" list); its
 * confirmation opens right below it.
 * @param {any} body a plan request, as the missing-nodes answer gives it @param {() => void} [onDone]
 */
export function installPackButton(body, onDone) {
  const box = h('div', { class: 'np-plan-box' });
  const button = h('button', { class: 'link-button np-install-button', 'data-action': 'install-pack',
    onclick: () => planInstall(box, body, onDone) }, `Install ${body.id || body.url.split('/').pop()}`);
  return h('span', null, button, box);
}
