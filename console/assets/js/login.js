// Sign in: the keys are exchanged for temporary STS credentials right away and then forgotten.

import { login } from './api.js';
import { clear, errorText, field, h } from './ui.js';

export function renderLogin(main, onDone) {
  const notice = sessionStorage.getItem('coffer.notice');
  sessionStorage.removeItem('coffer.notice');
  const accessKey = h('input', { type: 'text', name: 'access-key', autocomplete: 'username', required: true, autocapitalize: 'off', spellcheck: 'false' });
  const secretKey = h('input', { type: 'password', name: 'secret-key', autocomplete: 'current-password', required: true });
  const duration = h('select', { name: 'duration' },
    h('option', { value: '3600', text: '1 hour' }),
    h('option', { value: '14400', text: '4 hours' }),
    h('option', { value: '43200', text: '12 hours' }));
  const message = h('div', { class: 'form-message', 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const form = h('form', { class: 'login-form', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title', text: 'Sign in to Coffer' }),
    notice ? h('p', { class: 'notice', role: 'status', text: notice }) : null,
    field('Access key', accessKey),
    field('Secret key', secretKey, 'Used once to start a temporary session; it is not stored in the browser.'),
    field('Session length', duration),
    message,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear(message);
    if (!accessKey.value.trim() || !secretKey.value) {
      message.append(h('p', { class: 'error-box', role: 'alert', text: 'Enter an access key and a secret key.' }));
      (accessKey.value.trim() ? secretKey : accessKey).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const session = await login(accessKey.value.trim(), secretKey.value, Number(duration.value));
      secretKey.value = '';
      onDone(session);
    } catch (e) {
      const why = e.code === 'SignatureDoesNotMatch' || e.code === 'InvalidAccessKeyId' || e.status === 403
        ? `Sign-in failed: wrong access key or secret key (${e.code}).`
        : `Sign-in failed: ${errorText(e)}`;
      message.append(h('p', { class: 'error-box', role: 'alert', text: why }));
      secretKey.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  clear(main, h('div', { class: 'login-page' },
    h('div', { class: 'login-brand' }, h('img', { src: '/_console/favicon.svg', alt: '', width: 48, height: 48 }), h('span', { text: 'Coffer' })),
    form));
  accessKey.focus();
}
