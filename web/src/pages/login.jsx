// Sign-in: user name and password, and the TOTP code when the user has
// TOTP (the API answers 401 totp_required without one; the field is
// shown from the start too, for users who know they need it).
import { useState } from 'preact/hooks';
import { api, setToken } from '../api.js';
import { ErrorText, Field, useAction } from '../ui.jsx';

export function Login({ notice, onLogin }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [needTotp, setNeedTotp] = useState(false);
  const { run, busy, error, setError } = useAction();

  const submit = (ev) => {
    ev.preventDefault();
    run(async () => {
      const body = { username, password };
      if (totp) body.totp = totp;
      try {
        const doc = await api.post('/login', body);
        setToken(doc.data.token);
        setPassword('');
        setTotp('');
        await onLogin();
      } catch (e) {
        if (e.code === 'totp_required' && !totp) {
          setNeedTotp(true);
          setError(null);
          setTimeout(() => document.querySelector('input[name="totp"]')?.focus(), 0);
          return;
        }
        throw e;
      }
    });
  };

  return (
    <section class="login card" aria-labelledby="login-title">
      <h1 id="login-title">Sign in to Portcullis</h1>
      {notice && <p class="notice" role="status">{notice}</p>}
      <form onSubmit={submit}>
        <Field label="User name" value={username} onInput={setUsername} autocomplete="username"
          required autofocus name="username" />
        <Field label="Password" type="password" value={password} onInput={setPassword}
          autocomplete="current-password" required name="password" />
        <Field label={needTotp ? 'TOTP code (required)' : 'TOTP code (if enabled)'} value={totp}
          onInput={setTotp} inputMode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}"
          maxLength={6} name="totp" required={needTotp}
          hint={needTotp ? 'Your account has TOTP: enter the 6-digit code from your app.' : undefined} />
        <ErrorText error={error} />
        <button type="submit" class="primary" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </section>
  );
}
