// The bucket settings cards beyond versioning, tags and policy: object lock, default encryption,
// public access block, CORS and lifecycle rules.

import * as cfg from './api-config.js';
import { attempt, button, clear, confirm, errorBox, field, h, toast } from './ui.js';

/** A card with a heading that shows "Loading…" until `fill(card, head)` draws it. */
function card(id, title, fill) {
  const section = h('section', { class: 'card', 'aria-labelledby': `${id}-h` });
  const head = h('h2', { id: `${id}-h`, text: title });
  clear(section, head, h('p', { class: 'loading', text: 'Loading…' }));
  fill(section, head).catch((e) => clear(section, head, errorBox(e, `Cannot read the ${title.toLowerCase()} settings`)));
  return section;
}

function problemArea() {
  return h('div', { class: 'form-message', 'aria-live': 'polite' });
}

function fail(area, message) {
  clear(area, h('div', { class: 'error-box', role: 'alert', text: message }));
}

export function objectLockCard(bucket) {
  return card('lock', 'Object lock', async function draw(section, head) {
    const lock = await cfg.getObjectLock(bucket);
    if (!lock) {
      clear(section, head, h('p', { id: 'lock-state', text: 'Object lock is off. It can only be turned on when a bucket is created.' }));
      return;
    }
    const mode = h('select', { name: 'lock-mode' },
      h('option', { value: '', text: 'No default retention' }),
      h('option', { value: 'GOVERNANCE', text: 'Governance' }),
      h('option', { value: 'COMPLIANCE', text: 'Compliance' }));
    mode.value = lock.mode;
    const days = h('input', { type: 'number', name: 'lock-days', min: 1, max: 36500, value: lock.days || (lock.years ? lock.years * 365 : 1) });
    const problem = problemArea();
    clear(section, head,
      h('p', { id: 'lock-state', text: 'Object lock is on: versions can be protected from deletion.' }),
      field('Default retention mode', mode, 'Applied to new objects that name no retention. Compliance cannot be shortened by anyone.'),
      field('Default retention (days)', days),
      problem,
      h('div', { class: 'actions' }, button('Save retention', async () => {
        clear(problem);
        const n = Number(days.value);
        if (mode.value && !(Number.isInteger(n) && n > 0)) return fail(problem, 'Retention is a whole number of days, at least 1.');
        const ok = await attempt(() => cfg.putObjectLock(bucket, mode.value, n).then(() => true), 'Saving retention');
        if (ok) toast('Default retention saved');
      }, 'primary')));
  });
}

export function encryptionCard(bucket) {
  return card('encryption', 'Default encryption', async (section, head) => {
    const current = await cfg.getBucketEncryption(bucket);
    const algorithm = h('select', { name: 'sse-algorithm' },
      h('option', { value: '', text: 'None' }),
      h('option', { value: 'AES256', text: 'SSE-S3 (keys managed by Coffer)' }),
      h('option', { value: 'aws:kms', text: 'SSE-KMS (a key of the key provider)' }));
    algorithm.value = current.algorithm;
    const keyId = h('input', { type: 'text', name: 'kms-key-id', value: current.keyId, spellcheck: 'false', autocapitalize: 'off' });
    clear(section, head,
      field('Encrypt new objects with', algorithm, 'Objects uploaded without encryption headers are encrypted this way.'),
      field('KMS key id (SSE-KMS only)', keyId),
      h('div', { class: 'actions' }, button('Save encryption', async () => {
        const ok = await attempt(() => cfg.putBucketEncryption(bucket, algorithm.value, keyId.value.trim()).then(() => true), 'Saving encryption');
        if (ok) toast(algorithm.value ? 'Default encryption saved' : 'Default encryption removed');
      }, 'primary')));
  });
}

const FLAG_LABELS = {
  BlockPublicAcls: 'Refuse new public ACLs',
  IgnorePublicAcls: 'Ignore existing public ACLs',
  BlockPublicPolicy: 'Refuse public bucket policies',
  RestrictPublicBuckets: 'Restrict access granted by public policies',
};

export function publicAccessCard(bucket) {
  return card('public-access', 'Public access', async (section, head) => {
    const flags = await cfg.getPublicAccessBlock(bucket);
    const boxes = Object.fromEntries(cfg.PUBLIC_ACCESS_FLAGS.map((f) => [f, h('input', { type: 'checkbox', name: f, checked: flags[f] })]));
    clear(section, head,
      h('fieldset', { class: 'options' }, h('legend', { text: 'Block public access' }),
        ...cfg.PUBLIC_ACCESS_FLAGS.map((f) => h('label', {}, boxes[f], ` ${FLAG_LABELS[f]}`))),
      h('div', { class: 'actions' }, button('Save public access', async () => {
        const next = Object.fromEntries(cfg.PUBLIC_ACCESS_FLAGS.map((f) => [f, boxes[f].checked]));
        const ok = await attempt(() => cfg.putPublicAccessBlock(bucket, next).then(() => true), 'Saving public access');
        if (ok) toast('Public access settings saved');
      }, 'primary')));
  });
}

const CORS_EXAMPLE = [{
  AllowedHeaders: ['*'],
  AllowedMethods: ['GET', 'HEAD'],
  AllowedOrigins: ['https://example.com'],
  ExposeHeaders: ['ETag'],
  MaxAgeSeconds: 3000,
}];

export function corsCard(bucket) {
  return card('cors', 'CORS', async function draw(section, head) {
    const rules = await cfg.getBucketCors(bucket);
    const textArea = h('textarea', { rows: 10, spellcheck: 'false', autocapitalize: 'off', class: 'policy-text', name: 'cors-rules', 'aria-invalid': 'false' });
    textArea.value = rules.length ? JSON.stringify(rules, null, 2) : '';
    const problem = problemArea();
    textArea.addEventListener('input', () => { textArea.setAttribute('aria-invalid', 'false'); clear(problem); });
    const save = button('Save CORS', async () => {
      clear(problem);
      let parsed;
      try {
        parsed = textArea.value.trim() ? JSON.parse(textArea.value) : [];
        cfg.corsXml(parsed);
      } catch (e) {
        textArea.setAttribute('aria-invalid', 'true');
        return fail(problem, e instanceof SyntaxError ? `Not valid JSON: ${e.message}` : e.message);
      }
      try {
        await cfg.putBucketCors(bucket, parsed);
      } catch (e) {
        textArea.setAttribute('aria-invalid', 'true');
        return clear(problem, errorBox(e, 'The CORS rules were not saved'));
      }
      toast(parsed.length ? 'CORS rules saved' : 'CORS rules removed');
    }, 'primary');
    clear(section, head,
      h('p', { class: 'muted', text: rules.length ? `${rules.length} rule(s).` : 'No CORS rules: browsers on other sites cannot call this bucket.' }),
      field('Rules (JSON)', textArea, 'An array of rules with AllowedOrigins, AllowedMethods, AllowedHeaders, ExposeHeaders, MaxAgeSeconds. Empty removes them.'),
      problem,
      h('div', { class: 'actions' }, save, button('Insert example', () => {
        textArea.value = JSON.stringify(CORS_EXAMPLE, null, 2);
        textArea.focus();
      })));
  });
}

function positive(input) {
  const n = Number(input.value);
  return input.value.trim() === '' ? 0 : n;
}

export function lifecycleCard(bucket) {
  return card('lifecycle', 'Lifecycle rules', async function draw(section, head) {
    const rules = await cfg.getBucketLifecycle(bucket);
    const save = async (next, what) => {
      const ok = await attempt(() => cfg.putBucketLifecycle(bucket, next).then(() => true), what);
      if (ok) {
        toast(next.length ? 'Lifecycle rules saved' : 'Lifecycle rules removed');
        await draw(section, head);
      }
    };
    const list = rules.length
      ? h('ul', { class: 'rule-list' }, ...rules.map((r, i) => h('li', {},
        h('strong', { text: r.id || `Rule ${i + 1}` }), ` (${r.status}): ${r.summary} `,
        button('Delete', async () => {
          if (!(await confirm('Delete lifecycle rule', `Delete the rule ${r.id || i + 1}?`))) return;
          await save(rules.filter((_, j) => j !== i), 'Deleting the rule');
        }, 'small danger', { 'aria-label': `Delete rule ${r.id || i + 1}` }))))
      : h('p', { class: 'muted', text: 'No lifecycle rules.' });
    const id = h('input', { type: 'text', name: 'rule-id', maxlength: 255 });
    const prefix = h('input', { type: 'text', name: 'rule-prefix', spellcheck: 'false', autocapitalize: 'off' });
    const expire = h('input', { type: 'number', name: 'rule-expire-days', min: 1 });
    const noncurrent = h('input', { type: 'number', name: 'rule-noncurrent-days', min: 1 });
    const abort = h('input', { type: 'number', name: 'rule-abort-days', min: 1 });
    const markers = h('input', { type: 'checkbox', name: 'rule-delete-markers' });
    const problem = problemArea();
    clear(section, head, list,
      h('details', {}, h('summary', { text: 'Add a rule' }),
        field('Rule id', id),
        field('Prefix', prefix, 'Empty: every object of the bucket.'),
        field('Expire current versions after (days)', expire),
        field('Remove noncurrent versions after (days)', noncurrent),
        field('Abort incomplete multipart uploads after (days)', abort),
        h('label', {}, markers, ' Remove delete markers that have no versions left'),
        problem,
        h('div', { class: 'actions' }, button('Add rule', async () => {
          clear(problem);
          const values = [expire, noncurrent, abort].map(positive);
          if (values.some((n) => !(Number.isInteger(n) && n >= 0))) return fail(problem, 'Days are whole numbers.');
          let xml;
          try {
            xml = cfg.lifecycleRuleXml({
              id: id.value.trim(), prefix: prefix.value, expireDays: values[0], noncurrentDays: values[1], abortDays: values[2], deleteMarkers: markers.checked,
            });
          } catch (e) {
            return fail(problem, e.message);
          }
          await save([...rules, { xml }], 'Adding the rule');
        }, 'primary'))));
  });
}
