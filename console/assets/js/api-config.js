// Bucket configurations of the settings page: CORS, lifecycle, object lock, default encryption and
// public access block. Each is read as S3 XML and written back as S3 XML; "not configured" errors
// become empty values so the page can show them as off.

import { parseXml, send, xmlAll } from './api.js';
import { encodePath, sha256Bytes } from './sigv4.js';

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

function escapeXml(text) {
  return String(text).replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]);
}

function el(name, value) {
  return `<${name}>${escapeXml(value)}</${name}>`;
}

function children(node, name) {
  return Array.from(node.children).filter((c) => c.localName === name);
}

function text(node, name) {
  const c = children(node, name)[0];
  return c ? c.textContent : '';
}

function base64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** S3 wants an integrity checksum on configuration PUTs (Content-MD5 or a flexible checksum). */
async function putXml(bucket, sub, xml) {
  const checksum = base64(await sha256Bytes(xml));
  await send('PUT', encodePath(bucket), {
    query: { [sub]: '' },
    body: xml,
    headers: { 'content-type': 'application/xml', 'x-amz-checksum-sha256': checksum, 'x-amz-sdk-checksum-algorithm': 'SHA256' },
  });
}

/** GET of a sub-resource; `missing` lists the error codes meaning "not configured" (→ null). */
async function getXml(bucket, sub, missing) {
  try {
    return parseXml(await (await send('GET', encodePath(bucket), { query: { [sub]: '' } })).text());
  } catch (e) {
    if (missing.includes(e.code)) return null;
    throw e;
  }
}

async function remove(bucket, sub) {
  await send('DELETE', encodePath(bucket), { query: { [sub]: '' } });
}

// --- CORS: edited as JSON in the AWS console's shape ------------------------------------------------

const CORS_LISTS = ['AllowedHeaders', 'AllowedMethods', 'AllowedOrigins', 'ExposeHeaders'];
const CORS_XML_NAME = { AllowedHeaders: 'AllowedHeader', AllowedMethods: 'AllowedMethod', AllowedOrigins: 'AllowedOrigin', ExposeHeaders: 'ExposeHeader' };

/** The CORS rules as [{ID?, AllowedHeaders, AllowedMethods, AllowedOrigins, ExposeHeaders, MaxAgeSeconds?}], [] when none. */
export async function getBucketCors(bucket) {
  const doc = await getXml(bucket, 'cors', ['NoSuchCORSConfiguration']);
  if (!doc) return [];
  return xmlAll(doc, 'CORSRule').map((r) => {
    const rule = {};
    if (text(r, 'ID')) rule.ID = text(r, 'ID');
    for (const list of CORS_LISTS) rule[list] = children(r, CORS_XML_NAME[list]).map((c) => c.textContent);
    if (text(r, 'MaxAgeSeconds')) rule.MaxAgeSeconds = Number(text(r, 'MaxAgeSeconds'));
    return rule;
  });
}

/** Checks the JSON shape before anything is sent; throws an Error naming the first problem. */
export function corsXml(rules) {
  if (!Array.isArray(rules)) throw new Error('CORS rules are a JSON array of rule objects.');
  const body = rules.map((rule, i) => {
    if (!rule || typeof rule !== 'object' || Array.isArray(rule)) throw new Error(`Rule ${i + 1} is not an object.`);
    for (const key of Object.keys(rule)) {
      if (![...CORS_LISTS, 'ID', 'MaxAgeSeconds'].includes(key)) throw new Error(`Rule ${i + 1}: unknown field ${key}.`);
    }
    for (const list of CORS_LISTS) {
      if (rule[list] !== undefined && (!Array.isArray(rule[list]) || rule[list].some((v) => typeof v !== 'string'))) {
        throw new Error(`Rule ${i + 1}: ${list} must be an array of strings.`);
      }
    }
    if (!rule.AllowedMethods?.length || !rule.AllowedOrigins?.length) {
      throw new Error(`Rule ${i + 1} needs AllowedMethods and AllowedOrigins.`);
    }
    if (rule.MaxAgeSeconds !== undefined && !Number.isInteger(rule.MaxAgeSeconds)) {
      throw new Error(`Rule ${i + 1}: MaxAgeSeconds must be a whole number.`);
    }
    return '<CORSRule>' + (rule.ID ? el('ID', rule.ID) : '') +
      CORS_LISTS.map((list) => (rule[list] || []).map((v) => el(CORS_XML_NAME[list], v)).join('')).join('') +
      (rule.MaxAgeSeconds !== undefined ? el('MaxAgeSeconds', rule.MaxAgeSeconds) : '') + '</CORSRule>';
  });
  return `<?xml version="1.0" encoding="UTF-8"?><CORSConfiguration xmlns="${XMLNS}">${body.join('')}</CORSConfiguration>`;
}

export async function putBucketCors(bucket, rules) {
  if (!rules.length) return remove(bucket, 'cors');
  return putXml(bucket, 'cors', corsXml(rules));
}

// --- lifecycle: rules from the console's form, other rules kept verbatim ---------------------------

/** Rules as {id, status, summary, xml}: `xml` is the rule as stored, so saving keeps what the form cannot show. */
export async function getBucketLifecycle(bucket) {
  const doc = await getXml(bucket, 'lifecycle', ['NoSuchLifecycleConfiguration']);
  if (!doc) return [];
  const serializer = new XMLSerializer();
  return xmlAll(doc, 'Rule').map((r) => ({
    id: text(r, 'ID'),
    status: text(r, 'Status'),
    summary: lifecycleSummary(r),
    xml: serializer.serializeToString(r).replace(/ xmlns="[^"]*"/g, ''),
  }));
}

function lifecycleSummary(rule) {
  const parts = [];
  const prefix = xmlAll(rule, 'Prefix')[0];
  parts.push(prefix && prefix.textContent ? `prefix “${prefix.textContent}”` : 'all objects');
  const tags = xmlAll(rule, 'Tag').map((t) => `${text(t, 'Key')}=${text(t, 'Value')}`);
  if (tags.length) parts.push(`tags ${tags.join(', ')}`);
  const expiration = children(rule, 'Expiration')[0];
  if (expiration) {
    if (text(expiration, 'Days')) parts.push(`expire after ${text(expiration, 'Days')} days`);
    if (text(expiration, 'Date')) parts.push(`expire on ${text(expiration, 'Date').slice(0, 10)}`);
    if (text(expiration, 'ExpiredObjectDeleteMarker') === 'true') parts.push('remove expired delete markers');
  }
  const noncurrent = children(rule, 'NoncurrentVersionExpiration')[0];
  if (noncurrent) parts.push(`old versions go after ${text(noncurrent, 'NoncurrentDays')} days`);
  const abort = children(rule, 'AbortIncompleteMultipartUpload')[0];
  if (abort) parts.push(`abort uploads after ${text(abort, 'DaysAfterInitiation')} days`);
  return parts.join('; ');
}

/** One rule from the form: {id, prefix, expireDays, noncurrentDays, abortDays, deleteMarkers}. */
export function lifecycleRuleXml(rule) {
  const days = (n) => Number.isInteger(n) && n > 0;
  if (!days(rule.expireDays) && !days(rule.noncurrentDays) && !days(rule.abortDays) && !rule.deleteMarkers) {
    throw new Error('Choose at least one action.');
  }
  let xml = '<Rule>' + (rule.id ? el('ID', rule.id) : '') + `<Filter>${el('Prefix', rule.prefix || '')}</Filter>` + el('Status', 'Enabled');
  if (days(rule.expireDays)) xml += `<Expiration>${el('Days', rule.expireDays)}</Expiration>`;
  else if (rule.deleteMarkers) xml += `<Expiration>${el('ExpiredObjectDeleteMarker', 'true')}</Expiration>`;
  if (days(rule.noncurrentDays)) xml += `<NoncurrentVersionExpiration>${el('NoncurrentDays', rule.noncurrentDays)}</NoncurrentVersionExpiration>`;
  if (days(rule.abortDays)) xml += `<AbortIncompleteMultipartUpload>${el('DaysAfterInitiation', rule.abortDays)}</AbortIncompleteMultipartUpload>`;
  return xml + '</Rule>';
}

/** Saves the rules (as returned by getBucketLifecycle, plus new ones); none deletes the configuration. */
export async function putBucketLifecycle(bucket, rules) {
  if (!rules.length) return remove(bucket, 'lifecycle');
  return putXml(bucket, 'lifecycle',
    `<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration xmlns="${XMLNS}">${rules.map((r) => r.xml).join('')}</LifecycleConfiguration>`);
}

// --- object lock ---------------------------------------------------------------------------------

/** null when the bucket has no object lock; else {mode, days, years} of its default retention ('' when none). */
export async function getObjectLock(bucket) {
  const doc = await getXml(bucket, 'object-lock', ['ObjectLockConfigurationNotFoundError']);
  if (!doc || text(doc.documentElement, 'ObjectLockEnabled') !== 'Enabled') return null;
  const retention = xmlAll(doc, 'DefaultRetention')[0];
  return {
    mode: retention ? text(retention, 'Mode') : '',
    days: retention ? Number(text(retention, 'Days') || 0) : 0,
    years: retention ? Number(text(retention, 'Years') || 0) : 0,
  };
}

export async function putObjectLock(bucket, mode, days) {
  const rule = mode ? `<Rule><DefaultRetention>${el('Mode', mode)}${el('Days', days)}</DefaultRetention></Rule>` : '';
  return putXml(bucket, 'object-lock',
    `<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration xmlns="${XMLNS}"><ObjectLockEnabled>Enabled</ObjectLockEnabled>${rule}</ObjectLockConfiguration>`);
}

// --- default encryption --------------------------------------------------------------------------

/** {algorithm: '' | 'AES256' | 'aws:kms', keyId} */
export async function getBucketEncryption(bucket) {
  const doc = await getXml(bucket, 'encryption', ['ServerSideEncryptionConfigurationNotFoundError']);
  if (!doc) return { algorithm: '', keyId: '' };
  return { algorithm: xmlAll(doc, 'SSEAlgorithm')[0]?.textContent || '', keyId: xmlAll(doc, 'KMSMasterKeyID')[0]?.textContent || '' };
}

export async function putBucketEncryption(bucket, algorithm, keyId) {
  if (!algorithm) return remove(bucket, 'encryption');
  const key = algorithm === 'aws:kms' && keyId ? el('KMSMasterKeyID', keyId) : '';
  return putXml(bucket, 'encryption',
    `<?xml version="1.0" encoding="UTF-8"?><ServerSideEncryptionConfiguration xmlns="${XMLNS}"><Rule><ApplyServerSideEncryptionByDefault>${el('SSEAlgorithm', algorithm)}${key}</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>`);
}

// --- public access block -------------------------------------------------------------------------

export const PUBLIC_ACCESS_FLAGS = ['BlockPublicAcls', 'IgnorePublicAcls', 'BlockPublicPolicy', 'RestrictPublicBuckets'];

/** {BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets} as booleans (all false when none). */
export async function getPublicAccessBlock(bucket) {
  const doc = await getXml(bucket, 'publicAccessBlock', ['NoSuchPublicAccessBlockConfiguration']);
  return Object.fromEntries(PUBLIC_ACCESS_FLAGS.map((f) => [f, doc ? xmlAll(doc, f)[0]?.textContent === 'true' : false]));
}

export async function putPublicAccessBlock(bucket, flags) {
  if (!PUBLIC_ACCESS_FLAGS.some((f) => flags[f])) return remove(bucket, 'publicAccessBlock');
  return putXml(bucket, 'publicAccessBlock',
    `<?xml version="1.0" encoding="UTF-8"?><PublicAccessBlockConfiguration xmlns="${XMLNS}">${PUBLIC_ACCESS_FLAGS.map((f) => el(f, String(Boolean(flags[f])))).join('')}</PublicAccessBlockConfiguration>`);
}

// --- bucket creation with options ---------------------------------------------------------------

/** Creates a bucket; object lock (which implies versioning) can only be chosen here. */
export async function createBucketWith(bucket, { versioning = false, objectLock = false } = {}) {
  const headers = objectLock ? { 'x-amz-bucket-object-lock-enabled': 'true' } : undefined;
  await send('PUT', encodePath(bucket), { headers });
  if (versioning && !objectLock) {
    const xml = `<?xml version="1.0" encoding="UTF-8"?><VersioningConfiguration xmlns="${XMLNS}"><Status>Enabled</Status></VersioningConfiguration>`;
    await send('PUT', encodePath(bucket), { query: { versioning: '' }, body: xml, headers: { 'content-type': 'application/xml' } });
  }
}
