// Users: list and create; one user's page with enable/disable, password,
// TOTP enrolment (QR code drawn in the page from the otpauth:// URI the
// API returns once), public keys and deletion.
import { useEffect, useRef, useState } from 'preact/hooks';
import QRCode from 'qrcode';
import { api, enc, list } from '../api.js';
import { navigate } from '../router.js';
import {
  CodeLine, Confirm, ErrorText, Field, Loading, Page, Table, fmt, fmtTime, Check, useAction, useLoad,
} from '../ui.jsx';

export function Users() {
  const users = useLoad(async () => (await list('/users', { sort: 'name' })).data);
  const [f, setF] = useState({ name: '', password: '', disabled: false });
  const add = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const body = { name: f.name };
      if (f.password) body.password = f.password;
      if (f.disabled) body.disabled = true;
      await api.post('/users', body);
      setF({ name: '', password: '', disabled: false });
      users.reload();
    });
  };
  return (
    <Page title="Users">
      <form class="inline-form card" onSubmit={submit} aria-label="New user">
        <Field label="New user name" value={f.name} onInput={(v) => setF({ ...f, name: v })} required />
        <Field label="Password" type="password" value={f.password} autocomplete="new-password"
          onInput={(v) => setF({ ...f, password: v })} />
        <Check label="Disabled" checked={f.disabled} onInput={(v) => setF({ ...f, disabled: v })} />
        <button type="submit" class="primary" disabled={add.busy}>Add user</button>
      </form>
      <ErrorText error={add.error} />
      {users.loading && !users.data && <Loading />}
      <ErrorText error={users.error} />
      {users.data && (
        <Table caption="Users" rows={users.data}
          columns={[
            { label: 'Name', render: (u) => <a href={`/users/${enc(u.name)}`}>{u.name}</a> },
            { label: 'State', render: (u) => (u.disabled ? 'disabled' : 'enabled') },
            { label: 'TOTP', render: (u) => fmt(u.totp_enabled) },
            { label: 'Password', render: (u) => fmt(u.has_password) },
            { label: 'Created', render: (u) => fmtTime(u.created_at) },
          ]} />
      )}
    </Page>
  );
}

function QrCode({ uri }) {
  const ref = useRef(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    QRCode.toCanvas(ref.current, uri, { width: 232, margin: 2, errorCorrectionLevel: 'M' })
      .catch((e) => setError(e));
  }, [uri]);
  return (
    <>
      <canvas ref={ref} class="qr" role="img" aria-label="QR code of the TOTP secret for an authenticator app" />
      <ErrorText error={error} />
    </>
  );
}

function Totp({ user, onChange }) {
  const [enrol, setEnrol] = useState(null);
  const act = useAction();
  const enable = () => act.run(async () => {
    const doc = await api.post(`/users/${enc(user.name)}/totp`, {});
    setEnrol(doc.data);
    onChange();
  });
  const disable = () => act.run(async () => {
    await api.del(`/users/${enc(user.name)}/totp`);
    setEnrol(null);
    onChange();
  });
  return (
    <div class="card">
      <h2>TOTP</h2>
      <p>{user.totp_enabled ? 'TOTP is enabled: logins need a 6-digit code.' : 'TOTP is not enabled.'}</p>
      {enrol && (
        <div class="enrol" role="status">
          <p><strong>Scan this code with an authenticator app now.</strong> It is shown once; enabling again makes a new secret.</p>
          <QrCode uri={enrol.uri} />
          <CodeLine label="Secret" text={enrol.secret} />
          <CodeLine label="URI" text={enrol.uri} />
        </div>
      )}
      <div class="form-actions">
        <button type="button" onClick={enable} disabled={act.busy}>
          {user.totp_enabled ? 'Make a new TOTP secret' : 'Enable TOTP'}</button>
        {user.totp_enabled && <Confirm label="Disable TOTP" onConfirm={disable} busy={act.busy} />}
      </div>
      <ErrorText error={act.error} />
    </div>
  );
}

function Keys({ user }) {
  const keys = useLoad(async () => (await list(`/users/${enc(user.name)}/keys`)).data, [user.name]);
  const [key, setKey] = useState('');
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      await api.post(`/users/${enc(user.name)}/keys`, { public_key: key.trim() });
      setKey('');
      keys.reload();
    });
  };
  return (
    <div class="card">
      <h2>Public keys</h2>
      <ErrorText error={keys.error || del.error} />
      {keys.data && (
        <Table caption="Public keys" rows={keys.data} empty="No keys."
          columns={[
            { label: 'Type', key: 'type' },
            { label: 'Fingerprint', render: (k) => <code>{k.fingerprint}</code> },
            { label: 'Comment', key: 'comment' },
            { label: '', render: (k) => (
              <Confirm label="Delete" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/users/${enc(user.name)}/keys/${k.id}`); keys.reload(); })} />) },
          ]} />
      )}
      <form onSubmit={submit} aria-label="Add a public key">
        <Field label="Public key (one line of id_ed25519.pub)" type="textarea" rows={2} value={key}
          onInput={setKey} required spellcheck={false} />
        <button type="submit" disabled={add.busy}>Add key</button>
      </form>
      <ErrorText error={add.error} />
    </div>
  );
}

export function UserDetail({ id }) {
  const user = useLoad(async () => (await api.get(`/users/${enc(id)}`)).data, [id]);
  const [password, setPassword] = useState('');
  const act = useAction();
  if (user.loading && !user.data) return <Page title="User"><Loading /></Page>;
  if (user.error) return <Page title="User"><ErrorText error={user.error} /><p><a href="/users">All users</a></p></Page>;
  const u = user.data;
  const patch = (body) => act.run(async () => {
    await api.patch(`/users/${enc(u.name)}`, body);
    setPassword('');
    user.reload();
  });
  return (
    <Page title={`User ${u.name}`} actions={<>
      <button type="button" onClick={() => patch({ disabled: !u.disabled })} disabled={act.busy}>
        {u.disabled ? 'Enable user' : 'Disable user'}</button>
      <Confirm label="Delete user" busy={act.busy}
        onConfirm={() => act.run(async () => { await api.del(`/users/${enc(u.name)}`); navigate('/users'); })} />
    </>}>
      <p><a href="/users">← All users</a></p>
      <ErrorText error={act.error} />
      <dl class="facts">
        <dt>ID</dt><dd><code>{u.id}</code></dd>
        <dt>State</dt><dd>{u.disabled ? 'disabled' : 'enabled'}</dd>
        <dt>Groups</dt><dd>{fmt(u.groups)}</dd>
        <dt>Access profiles</dt><dd>{fmt(u.profiles)}</dd>
        <dt>Created</dt><dd>{fmtTime(u.created_at)}</dd>
      </dl>
      <form class="inline-form card" onSubmit={(ev) => { ev.preventDefault(); patch({ password }); }} aria-label="Set password">
        <Field label="New password" type="password" value={password} onInput={setPassword} required autocomplete="new-password" />
        <button type="submit" disabled={act.busy}>Set password</button>
      </form>
      <Totp user={u} onChange={user.reload} />
      <Keys user={u} />
    </Page>
  );
}
