// Buckets: list (with object counts and sizes from one listing page each), create, delete, settings.

import * as api from './api.js';
import { createBucketWith } from './api-config.js';
import { corsCard, encryptionCard, lifecycleCard, objectLockCard, publicAccessCard } from './bucket-settings.js';
import {
  attempt, badge, button, clear, confirm, errorBox, field, fmtBytes, fmtDate, h, modal, pageHeader, table, tagEditor,
  toast, unavailable,
} from './ui.js';

/** Objects counted per bucket on the list page: one listing request, no more. */
const COUNT_PAGE = 1000;
const COUNT_CONCURRENCY = 4;

export function validBucketName(name) {
  if (name.length < 3 || name.length > 63) return 'A bucket name has 3 to 63 characters.';
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) return 'Use lowercase letters, digits, dots and hyphens; start and end with a letter or digit.';
  if (/\.\./.test(name) || /^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'No two dots in a row, and not an IP address.';
  return '';
}

function bucketLink(name) {
  return h('a', { href: `#/browse/${encodeURIComponent(name)}`, text: name });
}

async function fillUsage(buckets, cells) {
  let next = 0;
  const worker = async () => {
    while (next < buckets.length) {
      const i = next++;
      const { count, size } = cells[i];
      try {
        const page = await api.listObjects(buckets[i].name, { delimiter: '', maxKeys: COUNT_PAGE });
        const bytes = page.objects.reduce((sum, o) => sum + o.size, 0);
        const more = page.truncated ? '≥ ' : '';
        count.textContent = `${more}${page.objects.length}`;
        size.textContent = `${more}${fmtBytes(bytes)}`;
        if (page.truncated) count.title = size.title = `Counted from the first ${COUNT_PAGE} objects only`;
      } catch (e) {
        count.textContent = size.textContent = '—';
        count.title = size.title = e.code || String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: COUNT_CONCURRENCY }, worker));
}

async function createBucketDialog(onCreated) {
  const name = h('input', { type: 'text', name: 'bucket-name', required: true, autocapitalize: 'off', spellcheck: 'false', maxlength: 63 });
  const problem = h('div', { class: 'form-message' });
  const versioning = h('input', { type: 'checkbox', name: 'bucket-versioning' });
  const objectLock = h('input', { type: 'checkbox', name: 'bucket-object-lock' });
  objectLock.addEventListener('change', () => {
    if (objectLock.checked) versioning.checked = true;
    versioning.disabled = objectLock.checked;
  });
  const body = h('div', {},
    field('Bucket name', name, '3–63 lowercase letters, digits, dots and hyphens.'),
    h('fieldset', { class: 'options' },
      h('legend', { text: 'Options' }),
      h('label', {}, versioning, ' Versioning ', h('small', { class: 'hint', text: 'keep every version of every object' })),
      h('label', {}, objectLock, ' Object lock ', h('small', { class: 'hint', text: 'protect versions from deletion (turns versioning on; cannot be undone)' })),
      h('label', {}, h('input', { type: 'checkbox', disabled: true }), ' Quota ', badge('not available in Coffer yet', 'muted'))),
    problem);
  await modal('Create bucket', body, [
    { label: 'Cancel' },
    {
      label: 'Create',
      kind: 'primary',
      submit: true,
      onClick: async () => {
        clear(problem);
        const value = name.value.trim();
        const why = validBucketName(value);
        if (why) {
          problem.append(h('p', { class: 'error-box', role: 'alert', text: why }));
          name.focus();
          return false;
        }
        try {
          await createBucketWith(value, { versioning: versioning.checked, objectLock: objectLock.checked });
        } catch (e) {
          problem.append(errorBox(e, 'Cannot create the bucket'));
          return false;
        }
        toast(`Bucket ${value} created`);
        onCreated(value);
        return true;
      },
    },
  ]);
}

export async function renderBuckets(main) {
  const body = h('div', {}, h('p', { class: 'loading', text: 'Loading buckets…' }));
  const refresh = async () => {
    let buckets;
    try {
      buckets = await api.listBuckets();
    } catch (e) {
      clear(body, errorBox(e, 'Cannot list buckets'));
      return;
    }
    const cells = buckets.map(() => ({ count: h('span', { text: '…' }), size: h('span', { text: '…' }) }));
    const rows = buckets.map((b, i) => [
      bucketLink(b.name),
      fmtDate(b.created),
      cells[i].count,
      cells[i].size,
      h('div', { class: 'row-actions' },
        h('a', { class: 'button small', href: `#/browse/${encodeURIComponent(b.name)}`, text: 'Browse', 'aria-label': `Browse ${b.name}` }),
        h('a', { class: 'button small', href: `#/buckets/${encodeURIComponent(b.name)}`, text: 'Settings', 'aria-label': `Settings of ${b.name}` }),
        button('Delete', async () => {
          if (!(await confirm('Delete bucket', `Delete the bucket ${b.name}? It must be empty.`))) return;
          const done = await attempt(() => api.deleteBucket(b.name).then(() => true), `Deleting ${b.name}`);
          if (done) {
            toast(`Bucket ${b.name} deleted`);
            refresh();
          }
        }, 'small danger', { 'aria-label': `Delete ${b.name}` })),
    ]);
    clear(body, table({ text: 'Buckets' },
      [{ label: 'Name' }, { label: 'Created', class: 'hide-sm' }, { label: 'Objects', class: 'num' }, { label: 'Size', class: 'num' }, { label: 'Actions' }],
      rows, 'No buckets yet. Create one to start.'));
    fillUsage(buckets, cells);
  };
  clear(main,
    pageHeader('Buckets',
      button('Refresh', () => refresh()),
      button('Create bucket', () => createBucketDialog(() => refresh()), 'primary')),
    body);
  await refresh();
}

const VERSIONING_LABEL = { Enabled: 'Enabled', Suspended: 'Suspended', '': 'Off' };

function versioningCard(bucket) {
  const card = h('section', { class: 'card', 'aria-labelledby': 'versioning-h' });
  const head = h('h2', { id: 'versioning-h', text: 'Versioning' });
  const draw = (status) => {
    const state = h('strong', { id: 'versioning-state', text: VERSIONING_LABEL[status] || status });
    const set = (next, label) => button(label, async () => {
      const ok = await attempt(() => api.putBucketVersioning(bucket, next).then(() => true), `${label} versioning`);
      if (ok) {
        toast(`Versioning ${next === 'Enabled' ? 'enabled' : 'suspended'}`);
        draw(next);
      }
    }, next === 'Enabled' ? 'primary' : '');
    clear(card, head,
      h('p', { class: 'versioning-status' }, 'Status: ', state),
      h('p', { class: 'muted', text: status === 'Enabled'
        ? 'Every upload keeps the earlier versions; a delete leaves a delete marker.'
        : status === 'Suspended'
          ? 'New uploads replace the null version; existing versions are kept.'
          : 'Coffer keeps one version of each object. Once enabled, versioning can only be suspended.' }),
      h('div', { class: 'actions' },
        status !== 'Enabled' ? set('Enabled', 'Enable') : null,
        status === 'Enabled' ? set('Suspended', 'Suspend') : null));
  };
  clear(card, head, h('p', { class: 'loading', text: 'Loading…' }));
  api.getBucketVersioning(bucket).then(draw, (e) => clear(card, head, errorBox(e, 'Cannot read the versioning state')));
  return card;
}

function policyExample(bucket) {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{
      Sid: 'PublicRead',
      Effect: 'Allow',
      Principal: { AWS: ['*'] },
      Action: ['s3:GetObject'],
      Resource: [`arn:aws:s3:::${bucket}/public/*`],
    }],
  }, null, 2);
}

function policyCard(bucket) {
  const card = h('section', { class: 'card policy-card', 'aria-labelledby': 'policy-h' });
  const head = h('h2', { id: 'policy-h', text: 'Bucket policy' });
  const problem = h('div', { class: 'form-message', 'aria-live': 'polite' });
  const text = h('textarea', { rows: 14, spellcheck: 'false', autocapitalize: 'off', class: 'policy-text', 'aria-invalid': 'false' });
  const state = h('p', { class: 'muted' });
  const fail = (message) => {
    text.setAttribute('aria-invalid', 'true');
    clear(problem, h('div', { class: 'error-box', role: 'alert', text: message }));
  };
  const reset = () => {
    text.setAttribute('aria-invalid', 'false');
    clear(problem);
  };
  text.addEventListener('input', reset);
  const load = async () => {
    reset();
    let current;
    try {
      current = await api.getBucketPolicy(bucket);
    } catch (e) {
      clear(problem, errorBox(e, 'Cannot read the policy'));
      return;
    }
    try {
      text.value = current ? JSON.stringify(JSON.parse(current), null, 2) : '';
    } catch {
      text.value = current;
    }
    state.textContent = current ? 'This bucket has a policy.' : 'This bucket has no policy.';
  };
  const save = button('Save policy', async () => {
    reset();
    const value = text.value.trim();
    if (!value) {
      fail('Enter a policy, or use Delete policy to remove it.');
      text.focus();
      return;
    }
    let parsed;
    try {
      parsed = JSON.parse(value);
    } catch (e) {
      fail(`Not valid JSON: ${e.message}`);
      text.focus();
      return;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      fail('A policy is a JSON object with a Statement.');
      text.focus();
      return;
    }
    try {
      await api.putBucketPolicy(bucket, JSON.stringify(parsed));
    } catch (e) {
      text.setAttribute('aria-invalid', 'true');
      clear(problem, errorBox(e, 'The policy was not saved'));
      return;
    }
    toast('Policy saved');
    await load();
  }, 'primary');
  const remove = button('Delete policy', async () => {
    if (!(await confirm('Delete bucket policy', `Delete the policy of ${bucket}?`))) return;
    reset();
    try {
      await api.deleteBucketPolicy(bucket);
    } catch (e) {
      clear(problem, errorBox(e, 'The policy was not deleted'));
      return;
    }
    toast('Policy deleted');
    await load();
  }, 'danger');
  const example = button('Insert example', () => {
    text.value = policyExample(bucket);
    reset();
    text.focus();
  });
  clear(card, head, state,
    field('Policy (JSON)', text, 'An IAM-style policy document; Principal "*" allows anonymous requests.'),
    problem,
    h('div', { class: 'actions' }, save, remove, example, button('Reload', () => load())));
  load();
  return card;
}

export async function renderBucketSettings(main, bucket) {
  const tagsBox = h('section', { class: 'card', 'aria-labelledby': 'tags-h' }, h('h2', { id: 'tags-h', text: 'Tags' }),
    h('p', { class: 'loading', text: 'Loading…' }));
  clear(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/buckets', text: 'Buckets' }), ' / ', h('span', { text: bucket })),
    pageHeader(`Bucket ${bucket}`, h('a', { class: 'button primary', href: `#/browse/${encodeURIComponent(bucket)}`, text: 'Browse objects' })),
    h('div', { class: 'grid' },
      versioningCard(bucket),
      tagsBox,
      policyCard(bucket),
      objectLockCard(bucket),
      encryptionCard(bucket),
      publicAccessCard(bucket),
      corsCard(bucket),
      lifecycleCard(bucket),
      h('section', { class: 'card', 'aria-labelledby': 'features-h' }, h('h2', { id: 'features-h', text: 'Other settings' }),
        unavailable('Quota', 'Not available in Coffer yet.'))));
  let tags;
  try {
    tags = await api.getBucketTags(bucket);
  } catch (e) {
    clear(tagsBox, h('h2', { id: 'tags-h', text: 'Tags' }), errorBox(e, 'Cannot read the tags'));
    return;
  }
  const editor = tagEditor(tags, 50, 'Bucket tags');
  clear(tagsBox, h('h2', { id: 'tags-h', text: 'Tags' }), editor.el,
    h('div', { class: 'actions' }, button('Save tags', async () => {
      const ok = await attempt(() => api.putBucketTags(bucket, editor.value()).then(() => true), 'Saving tags');
      if (ok) toast('Tags saved');
    }, 'primary')));
}
