// Identity: users and their access keys, groups, managed policies (create, attach, detach),
// all through the admin API (`/coffer/admin/v1/`).

import * as api from './api.js';
import {
  attempt, badge, button, clear, confirm, errorBox, field, fmtDate, h, modal, pageHeader, table, toast,
} from './ui.js';

const TABS = [['users', 'Users'], ['groups', 'Groups'], ['policies', 'Policies']];
const POLICY_TEMPLATE = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: ['arn:aws:s3:::my-bucket', 'arn:aws:s3:::my-bucket/*'] }],
}, null, 2);

function tabs(current) {
  return h('nav', { class: 'tabs', 'aria-label': 'Identity sections' },
    TABS.map(([id, label]) => h('a', { href: `#/identity/${id}`, text: label, 'aria-current': id === current ? 'page' : false })));
}

/** Shows a new key's secret once. */
async function showSecret(key) {
  const access = h('input', { type: 'text', readonly: true, value: key.access_key, name: 'new-access-key' });
  const secret = h('input', { type: 'text', readonly: true, value: key.secret_key, name: 'new-secret-key' });
  await modal('Access key created', h('div', {},
    h('p', { class: 'notice', text: 'Copy the secret key now: it is not shown again.' }),
    field('User', h('input', { type: 'text', readonly: true, value: key.user })),
    field('Access key', access),
    field('Secret key', secret)), [{ label: 'Done', kind: 'primary' }]);
}

function checkboxList(legend, names, checked = []) {
  const boxes = names.map((name) => ({ name, box: h('input', { type: 'checkbox', value: name, checked: checked.includes(name) }) }));
  const el = h('fieldset', { class: 'checks' }, h('legend', { text: legend }),
    names.length ? boxes.map(({ name, box }) => h('label', {}, box, ` ${name}`)) : h('p', { class: 'muted', text: 'None.' }));
  return { el, value: () => boxes.filter((b) => b.box.checked).map((b) => b.name) };
}

async function policyNames() {
  const policies = await api.admin('GET', 'policies');
  return policies.map((p) => p.name).sort();
}

// --- users -----------------------------------------------------------------------------------

async function createUser(refresh) {
  let names = [];
  try {
    names = await policyNames();
  } catch (e) {
    toast(`Cannot list policies — ${e}`, 'error');
  }
  const name = h('input', { type: 'text', name: 'user-name', required: true, spellcheck: 'false', autocapitalize: 'off', maxlength: 64 });
  const policies = checkboxList('Policies', names);
  const problem = h('div', { class: 'form-message' });
  let created;
  await modal('Create user', h('div', {}, field('User name', name, '1–64 of A–Z a–z 0–9 + = , . @ _ - :'), policies.el, problem), [
    { label: 'Cancel' },
    { label: 'Create', kind: 'primary', submit: true, onClick: async () => {
      clear(problem);
      try {
        created = await api.admin('POST', 'users', { name: name.value.trim(), policies: policies.value() });
      } catch (e) {
        problem.append(errorBox(e, 'Cannot create the user'));
        return false;
      }
      return true;
    } },
  ]);
  if (created) {
    toast(`User ${created.user} created`);
    refresh();
    await showSecret(created);
  }
}

async function manageUser(userName, refresh) {
  const body = h('div', {}, h('p', { class: 'loading', text: 'Loading…' }));
  const draw = async () => {
    let user;
    let names;
    try {
      [user, names] = await Promise.all([api.admin('GET', `users/${userName}`), policyNames()]);
    } catch (e) {
      clear(body, errorBox(e));
      return;
    }
    const attachSelect = h('select', { 'aria-label': 'Policy to attach' },
      names.filter((n) => !user.policies.includes(n)).map((n) => h('option', { value: n, text: n })));
    const keys = user.access_keys.map((k) => [
      h('code', { text: k.access_key }),
      k.service_account ? badge('service account') : badge('key'),
      badge(k.status, k.status === 'enabled' ? 'ok' : 'warn'),
      fmtDate(k.created_unix_ms ? new Date(k.created_unix_ms).toISOString() : ''),
      h('div', { class: 'row-actions' },
        button(k.status === 'enabled' ? 'Disable' : 'Enable', async () => {
          const ok = await attempt(() => api.admin('POST', `keys/${k.access_key}/${k.status === 'enabled' ? 'disable' : 'enable'}`), 'Key');
          if (ok) draw();
        }, 'small'),
        button('Delete', async () => {
          if (!(await confirm('Delete access key', `Delete the access key ${k.access_key}?`))) return;
          if (await attempt(() => api.admin('DELETE', `keys/${k.access_key}`), 'Delete key')) draw();
        }, 'small danger', { 'aria-label': `Delete key ${k.access_key}` })),
    ]);
    clear(body,
      h('p', {}, 'Status: ', badge(user.status, user.status === 'enabled' ? 'ok' : 'warn'), ' · Groups: ', user.groups.length ? user.groups.join(', ') : 'none'),
      h('h3', { text: 'Policies' }),
      h('ul', { class: 'chips' }, user.policies.length ? user.policies.map((p) => h('li', {}, h('span', { text: p }),
        button('Detach', async () => {
          if (await attempt(() => api.admin('POST', `policies/${p}/detach`, { user: userName }), 'Detach')) {
            toast(`Detached ${p} from ${userName}`);
            draw();
          }
        }, 'small', { 'aria-label': `Detach ${p}` }))) : h('li', { class: 'muted', text: 'No policies: this user can do nothing yet.' })),
      h('div', { class: 'row' }, attachSelect, button('Attach policy', async () => {
        if (!attachSelect.value) return;
        if (await attempt(() => api.admin('POST', `policies/${attachSelect.value}/attach`, { user: userName }), 'Attach')) {
          toast(`Attached ${attachSelect.value} to ${userName}`);
          draw();
        }
      }, 'small')),
      h('h3', { text: 'Access keys' }),
      table('Access keys', [{ label: 'Access key' }, { label: 'Kind' }, { label: 'Status' }, { label: 'Created' }, { label: 'Actions' }], keys, 'No keys.'),
      h('div', { class: 'row' },
        button('Create access key', async () => {
          const key = await attempt(() => api.admin('POST', `users/${userName}/keys`), 'Create key');
          if (key) {
            await showSecret(key);
            draw();
          }
        }, 'small'),
        button('Create service account', async () => {
          const description = h('input', { type: 'text', maxlength: 256 });
          const policy = h('textarea', { rows: 6, spellcheck: 'false', placeholder: 'Optional policy JSON narrowing the user’s rights' });
          const problem = h('div', { class: 'form-message' });
          let key;
          await modal('Create service account', h('div', {}, field('Description', description), field('Policy (optional)', policy), problem), [
            { label: 'Cancel' },
            { label: 'Create', kind: 'primary', onClick: async () => {
              clear(problem);
              const request = { description: description.value };
              if (policy.value.trim()) {
                try {
                  request.policy = JSON.parse(policy.value);
                } catch (e) {
                  problem.append(h('p', { class: 'error-box', role: 'alert', text: `The policy is not valid JSON: ${e.message}` }));
                  return false;
                }
              }
              try {
                key = await api.admin('POST', `users/${userName}/service-accounts`, request);
              } catch (e) {
                problem.append(errorBox(e));
                return false;
              }
              return true;
            } },
          ]);
          if (key) {
            await showSecret(key);
            draw();
          }
        }, 'small')));
  };
  const closed = modal(`User ${userName}`, body, [{ label: 'Close' }]);
  await draw();
  await closed;
  refresh();
}

async function renderUsers(body) {
  const refresh = async () => {
    let users;
    try {
      users = await api.admin('GET', 'users');
    } catch (e) {
      clear(body, errorBox(e, 'Cannot list users'));
      return;
    }
    users.sort((a, b) => a.user.localeCompare(b.user));
    const rows = users.map((u) => [
      h('button', { type: 'button', class: 'link', text: u.user, on: { click: () => manageUser(u.user, refresh) } }),
      badge(u.status, u.status === 'enabled' ? 'ok' : 'warn'),
      u.policies.length ? u.policies.join(', ') : h('span', { class: 'muted', text: 'none' }),
      u.groups.length ? u.groups.join(', ') : h('span', { class: 'muted', text: 'none' }),
      String(u.access_keys.length),
      h('div', { class: 'row-actions' },
        button('Manage', () => manageUser(u.user, refresh), 'small', { 'aria-label': `Manage ${u.user}` }),
        button(u.status === 'enabled' ? 'Disable' : 'Enable', async () => {
          if (await attempt(() => api.admin('POST', `users/${u.user}/${u.status === 'enabled' ? 'disable' : 'enable'}`), 'User')) refresh();
        }, 'small', { 'aria-label': `${u.status === 'enabled' ? 'Disable' : 'Enable'} ${u.user}` }),
        button('Delete', async () => {
          if (!(await confirm('Delete user', `Delete the user ${u.user} and all of its keys?`))) return;
          if (await attempt(() => api.admin('DELETE', `users/${u.user}`), 'Delete user')) {
            toast(`User ${u.user} deleted`);
            refresh();
          }
        }, 'small danger', { 'aria-label': `Delete ${u.user}` })),
    ]);
    clear(body,
      h('div', { class: 'actions bar' }, button('Create user', () => createUser(refresh), 'primary')),
      table({ text: 'Users' }, [{ label: 'User' }, { label: 'Status' }, { label: 'Policies' }, { label: 'Groups' }, { label: 'Keys', class: 'num' }, { label: 'Actions' }],
        rows, 'No users yet. The root user is configured on the server and not listed.'));
  };
  await refresh();
}

// --- groups ----------------------------------------------------------------------------------

async function manageGroup(groupName, refresh) {
  const body = h('div', {}, h('p', { class: 'loading', text: 'Loading…' }));
  const draw = async () => {
    let group;
    let users;
    let names;
    try {
      [group, users, names] = await Promise.all([api.admin('GET', `groups/${groupName}`), api.admin('GET', 'users'), policyNames()]);
    } catch (e) {
      clear(body, errorBox(e));
      return;
    }
    const addSelect = h('select', { 'aria-label': 'User to add' },
      users.map((u) => u.user).filter((u) => !group.members.includes(u)).map((u) => h('option', { value: u, text: u })));
    const attachSelect = h('select', { 'aria-label': 'Policy to attach' },
      names.filter((n) => !group.policies.includes(n)).map((n) => h('option', { value: n, text: n })));
    clear(body,
      h('p', {}, 'Status: ', badge(group.status, group.status === 'enabled' ? 'ok' : 'warn')),
      h('h3', { text: 'Members' }),
      h('ul', { class: 'chips' }, group.members.length ? group.members.map((m) => h('li', {}, h('span', { text: m }),
        button('Remove', async () => {
          if (await attempt(() => api.admin('POST', `groups/${groupName}/members`, { remove: [m] }), 'Remove member')) draw();
        }, 'small', { 'aria-label': `Remove ${m}` }))) : h('li', { class: 'muted', text: 'No members.' })),
      h('div', { class: 'row' }, addSelect, button('Add member', async () => {
        if (!addSelect.value) return;
        if (await attempt(() => api.admin('POST', `groups/${groupName}/members`, { add: [addSelect.value] }), 'Add member')) draw();
      }, 'small')),
      h('h3', { text: 'Policies' }),
      h('ul', { class: 'chips' }, group.policies.length ? group.policies.map((p) => h('li', {}, h('span', { text: p }),
        button('Detach', async () => {
          if (await attempt(() => api.admin('POST', `policies/${p}/detach`, { group: groupName }), 'Detach')) draw();
        }, 'small', { 'aria-label': `Detach ${p}` }))) : h('li', { class: 'muted', text: 'No policies.' })),
      h('div', { class: 'row' }, attachSelect, button('Attach policy', async () => {
        if (!attachSelect.value) return;
        if (await attempt(() => api.admin('POST', `policies/${attachSelect.value}/attach`, { group: groupName }), 'Attach')) draw();
      }, 'small')));
  };
  const closed = modal(`Group ${groupName}`, body, [{ label: 'Close' }]);
  await draw();
  await closed;
  refresh();
}

async function renderGroups(body) {
  const refresh = async () => {
    let groups;
    try {
      groups = await api.admin('GET', 'groups');
    } catch (e) {
      clear(body, errorBox(e, 'Cannot list groups'));
      return;
    }
    const rows = groups.map((g) => [
      h('button', { type: 'button', class: 'link', text: g.group, on: { click: () => manageGroup(g.group, refresh) } }),
      badge(g.status, g.status === 'enabled' ? 'ok' : 'warn'),
      g.members.length ? g.members.join(', ') : h('span', { class: 'muted', text: 'none' }),
      g.policies.length ? g.policies.join(', ') : h('span', { class: 'muted', text: 'none' }),
      h('div', { class: 'row-actions' },
        button('Manage', () => manageGroup(g.group, refresh), 'small', { 'aria-label': `Manage ${g.group}` }),
        button(g.status === 'enabled' ? 'Disable' : 'Enable', async () => {
          if (await attempt(() => api.admin('POST', `groups/${g.group}/${g.status === 'enabled' ? 'disable' : 'enable'}`), 'Group')) refresh();
        }, 'small'),
        button('Delete', async () => {
          if (!(await confirm('Delete group', `Delete the group ${g.group}?`))) return;
          if (await attempt(() => api.admin('DELETE', `groups/${g.group}`), 'Delete group')) refresh();
        }, 'small danger', { 'aria-label': `Delete ${g.group}` })),
    ]);
    clear(body,
      h('div', { class: 'actions bar' }, button('Create group', async () => {
        let users = [];
        try {
          users = (await api.admin('GET', 'users')).map((u) => u.user);
        } catch {
          // members can be added later
        }
        const name = h('input', { type: 'text', required: true, spellcheck: 'false' });
        const members = checkboxList('Members', users);
        const problem = h('div', { class: 'form-message' });
        await modal('Create group', h('div', {}, field('Group name', name), members.el, problem), [
          { label: 'Cancel' },
          { label: 'Create', kind: 'primary', submit: true, onClick: async () => {
            clear(problem);
            try {
              await api.admin('POST', 'groups', { name: name.value.trim(), members: members.value() });
            } catch (e) {
              problem.append(errorBox(e, 'Cannot create the group'));
              return false;
            }
            toast(`Group ${name.value.trim()} created`);
            refresh();
            return true;
          } },
        ]);
      }, 'primary')),
      table({ text: 'Groups' }, [{ label: 'Group' }, { label: 'Status' }, { label: 'Members' }, { label: 'Policies' }, { label: 'Actions' }], rows, 'No groups yet.'));
  };
  await refresh();
}

// --- policies --------------------------------------------------------------------------------

/** Checks a policy document's shape before it is sent; returns a problem or ''. */
export function policyProblem(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `Not valid JSON: ${e.message}`;
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return 'A policy is a JSON object.';
  if (!doc.Statement) return 'A policy needs a "Statement".';
  const statements = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  for (const [i, s] of statements.entries()) {
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') return `Statement ${i + 1}: "Effect" must be "Allow" or "Deny".`;
    if (!s.Action && !s.NotAction) return `Statement ${i + 1}: needs "Action" or "NotAction".`;
  }
  return '';
}

async function attachDialog(policy, refresh) {
  let users = [];
  let groups = [];
  try {
    [users, groups] = await Promise.all([api.admin('GET', 'users'), api.admin('GET', 'groups')]);
  } catch (e) {
    toast(`Cannot list users and groups — ${e}`, 'error');
    return;
  }
  const target = h('select', {},
    h('optgroup', { label: 'Users' }, users.map((u) => h('option', { value: `user:${u.user}`, text: u.user }))),
    h('optgroup', { label: 'Groups' }, groups.map((g) => h('option', { value: `group:${g.group}`, text: g.group }))));
  const problem = h('div', { class: 'form-message' });
  const act = (what) => async () => {
    clear(problem);
    const [kind, name] = [target.value.slice(0, target.value.indexOf(':')), target.value.slice(target.value.indexOf(':') + 1)];
    if (!name) return false;
    try {
      await api.admin('POST', `policies/${policy}/${what}`, { [kind]: name });
    } catch (e) {
      problem.append(errorBox(e));
      return false;
    }
    toast(`${what === 'attach' ? 'Attached' : 'Detached'} ${policy} ${what === 'attach' ? 'to' : 'from'} ${name}`);
    refresh();
    return true;
  };
  await modal(`Attach or detach ${policy}`, h('div', {}, field('User or group', target), problem), [
    { label: 'Cancel' },
    { label: 'Detach', onClick: act('detach') },
    { label: 'Attach', kind: 'primary', onClick: act('attach') },
  ]);
}

async function renderPolicies(body) {
  const refresh = async () => {
    let policies;
    try {
      policies = await api.admin('GET', 'policies');
    } catch (e) {
      clear(body, errorBox(e, 'Cannot list policies'));
      return;
    }
    policies.sort((a, b) => (a.builtin === b.builtin ? a.name.localeCompare(b.name) : a.builtin ? -1 : 1));
    const rows = policies.map((p) => [
      h('button', { type: 'button', class: 'link', text: p.name, on: { click: () => modal(`Policy ${p.name}`,
        h('pre', { class: 'json', tabindex: '0', text: JSON.stringify(p.document, null, 2) })) } }),
      p.builtin ? badge('built in') : badge('custom', 'ok'),
      h('div', { class: 'row-actions' },
        button('View', () => modal(`Policy ${p.name}`, h('pre', { class: 'json', tabindex: '0', text: JSON.stringify(p.document, null, 2) })), 'small', { 'aria-label': `View ${p.name}` }),
        button('Attach / detach', () => attachDialog(p.name, refresh), 'small', { 'aria-label': `Attach or detach ${p.name}` }),
        p.builtin ? null : button('Delete', async () => {
          if (!(await confirm('Delete policy', `Delete the policy ${p.name}? It must not be attached.`))) return;
          if (await attempt(() => api.admin('DELETE', `policies/${p.name}`), 'Delete policy')) refresh();
        }, 'small danger', { 'aria-label': `Delete ${p.name}` })),
    ]);
    clear(body,
      h('div', { class: 'actions bar' }, button('Create policy', async () => {
        const name = h('input', { type: 'text', required: true, spellcheck: 'false' });
        const doc = h('textarea', { rows: 14, spellcheck: 'false', class: 'code', value: POLICY_TEMPLATE });
        const status = h('p', { class: 'hint', 'aria-live': 'polite' });
        const check = () => {
          const problem = policyProblem(doc.value);
          status.textContent = problem || 'Valid JSON policy.';
          status.className = problem ? 'hint bad' : 'hint good';
          doc.setAttribute('aria-invalid', problem ? 'true' : 'false');
          return problem;
        };
        doc.addEventListener('input', check);
        check();
        const problem = h('div', { class: 'form-message' });
        await modal('Create policy', h('div', {}, field('Policy name', name), field('Policy document (JSON)', doc), status, problem), [
          { label: 'Cancel' },
          { label: 'Create', kind: 'primary', onClick: async () => {
            clear(problem);
            if (check()) {
              doc.focus();
              return false;
            }
            try {
              await api.admin('POST', 'policies', { name: name.value.trim(), document: JSON.parse(doc.value) });
            } catch (e) {
              problem.append(errorBox(e, 'Cannot create the policy'));
              return false;
            }
            toast(`Policy ${name.value.trim()} created`);
            refresh();
            return true;
          } },
        ]);
      }, 'primary')),
      table({ text: 'Policies' }, [{ label: 'Policy' }, { label: 'Kind' }, { label: 'Actions' }], rows));
  };
  await refresh();
}

export async function renderIdentity(main, tab) {
  const body = h('div', {}, h('p', { class: 'loading', text: 'Loading…' }));
  clear(main, pageHeader('Identity'), tabs(tab), body);
  if (tab === 'groups') await renderGroups(body);
  else if (tab === 'policies') await renderPolicies(body);
  else await renderUsers(body);
}
