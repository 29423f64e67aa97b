// Assets: list and search, create, and one asset's page with its edit
// form, its grants and the exact ssh/scp/sftp command lines for the
// signed-in user (login grammar, SPEC §3); for an rdp asset the RDP
// proxy's settings for mstsc (a .rdp file), mRemoteNG and xfreerdp.
import { useState } from 'preact/hooks';
import { api, enc, list } from '../api.js';
import { navigate } from '../router.js';
import {
  CodeLine, Confirm, ErrorText, Field, Loading, Page, Select, Table, fmt, fmtTime, useAction, useLoad,
} from '../ui.jsx';

// The site part of a login: a path below /root, nothing for /root itself.
function sitePart(site) {
  if (!site || site === '/root') return '';
  return site.replace(/^\/root\//, '');
}

// Quotes a word for a POSIX shell.
export function shq(s) {
  return `'${String(s).replace(/'/g, "'\\''")}'`;
}

// The login string user[/site][?totp]#asset. The asset goes by name when
// that is unambiguous and safe in a login, by ID otherwise.
export function loginFor(user, asset, allAssets, totp) {
  const unique = !allAssets || allAssets.filter((a) => a.name === asset.name).length === 1;
  const safe = /^[^'@#?/\\\s][^'@#?/\\]*$/.test(asset.name) && !/\s$/.test(asset.name);
  const target = unique && safe ? asset.name : asset.id;
  const site = sitePart(asset.site);
  return `${user}${site ? `/${site}` : ''}${totp ? `?${totp}` : ''}#${target}`;
}

export function proxyHost(settings) {
  const l = settings && settings.ssh && settings.ssh.listen;
  if (!l || l === '0.0.0.0' || l === '::' || l === '[::]') return location.hostname;
  return l;
}

export function commands(user, asset, allAssets, settings, totp) {
  const login = loginFor(user, asset, allAssets, totp);
  const host = proxyHost(settings);
  const port = settings ? settings.ssh.port : 2203;
  return {
    ssh: `ssh ${shq(`${login}@${host}`)} -p ${port}`,
    scp: `scp -P ${port} -o User=${shq(login)} FILE ${host}:/tmp/`,
    sftp: `sftp -P ${port} -o User=${shq(login)} ${host}`,
  };
}

// Where RDP clients connect: the [rdp] listen address unless it is a
// wildcard, then the host this page came from.
export function rdpHost(settings) {
  const l = settings && settings.rdp && settings.rdp.listen;
  if (!l || l === '0.0.0.0' || l === '::' || l === '[::]' || l === '*') return location.hostname;
  return l;
}

// A .rdp file as mstsc reads it: server, port and the whole login in the
// user name; NLA (CredSSP) on, the password asked by the client.
export function rdpFile(login, host, port) {
  const v6 = host.includes(':') && !host.startsWith('[');
  return [
    `full address:s:${v6 ? `[${host}]` : host}:${port}`,
    `username:s:${login}`,
    'enablecredsspsupport:i:1',
    'authentication level:i:2',
    'prompt for credentials:i:1',
    'redirectclipboard:i:0',
    'redirectprinters:i:0',
    'redirectdrives:i:0',
    'drivestoredirect:s:',
    '',
  ].join('\r\n');
}

function RdpConnect({ asset, me, data, totp }) {
  const rdp = data.settings.rdp;
  if (!rdp || !rdp.enabled) {
    return <p class="muted">The RDP proxy is not enabled on this server ([rdp] enabled = true).</p>;
  }
  const login = loginFor(me.name, asset, data.assets, totp);
  const host = rdpHost(data.settings);
  const text = rdpFile(login, host, rdp.port);
  const href = URL.createObjectURL(new Blob([text], { type: 'application/x-rdp' }));
  const fname = `${asset.name.replace(/[^A-Za-z0-9._-]/g, '_') || 'asset'}.rdp`;
  return (
    <div>
      <p><a class="button" href={href} download={fname}>Download {fname}</a> for the Windows Remote Desktop client (mstsc).</p>
      <CodeLine label="xfreerdp" text={`xfreerdp /v:${host}:${rdp.port} /u:${shq(login)} /sec:nla`} />
      <h3>mRemoteNG</h3>
      <dl class="facts">
        <dt>Protocol</dt><dd>RDP</dd>
        <dt>Hostname / port</dt><dd><code>{host}</code> / <code>{rdp.port}</code></dd>
        <dt>Username</dt><dd><code>{login}</code></dd>
        <dt>Password</dt><dd>your Portcullis password</dd>
        <dt>Domain</dt><dd>(empty)</dd>
      </dl>
      <CodeLine label="User name" text={login} />
      {rdp.tls_fingerprint && (
        <p class="muted">The proxy's certificate: <code>{rdp.tls_fingerprint}</code></p>
      )}
    </div>
  );
}

function AssetForm({ sites, initial, onSave, submitLabel }) {
  const [f, setF] = useState(initial);
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const { run, busy, error } = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    run(() => onSave(f));
  };
  return (
    <form class="grid-form" onSubmit={submit}>
      <Field label="Name" value={f.name} onInput={set('name')} required />
      <Field label="Host" value={f.host} onInput={set('host')} required />
      <Field label="Port" type="number" min="1" max="65535" value={f.port} onInput={set('port')} />
      {sites && (
        <Select label="Site" value={f.site} onInput={set('site')}
          options={sites.map((s) => s.path)} disabled={!!initial.id} />
      )}
      <Field label="Login on the target" value={f.login} onInput={set('login')}
        hint="Empty: the Portcullis user's own name." />
      <Field label={initial.id ? 'New password (vaulted; empty keeps it)' : 'Password (vaulted)'} type="password"
        value={f.password} onInput={set('password')} autocomplete="new-password" />
      <Field label={initial.id ? 'New private key (empty keeps it)' : 'Private key (vaulted, PEM/OpenSSH)'} type="textarea"
        rows={3} value={f.private_key} onInput={set('private_key')} spellcheck={false} />
      <Field label="Host key fingerprint" value={f.host_key_fingerprint} onInput={set('host_key_fingerprint')}
        hint="SHA256:…; empty: pin the first key the target shows." placeholder="SHA256:" />
      <Field label="Route" value={f.route} onInput={set('route')}
        hint="direct; agent:ID (through an agent); peer:NAME (through a peer node)" />
      <ErrorText error={error} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy}>{submitLabel}</button>
      </div>
    </form>
  );
}

const EMPTY = { name: '', host: '', port: '22', site: '/root', login: '', password: '', private_key: '', host_key_fingerprint: '', route: 'direct' };

export function Assets() {
  const assets = useLoad(async () => (await list('/assets')).data);
  const sites = useLoad(async () => (await list('/sites')).data);
  const [q, setQ] = useState('');
  const [creating, setCreating] = useState(false);

  const create = async (f) => {
    const body = { name: f.name, host: f.host };
    if (f.port) body.port = Number(f.port);
    if (f.site) body.site = f.site;
    for (const k of ['login', 'password', 'private_key', 'host_key_fingerprint', 'route']) if (f[k]) body[k] = f[k];
    const doc = await api.post('/assets', body);
    navigate(`/assets/${doc.data.id}`);
  };

  const needle = q.trim().toLowerCase();
  const rows = (assets.data || []).filter((a) => !needle || [a.name, a.host, a.site, a.id, a.login_user]
    .some((v) => v && String(v).toLowerCase().includes(needle)));

  return (
    <Page title="Assets" actions={
      <button type="button" class="primary" aria-expanded={creating ? 'true' : 'false'}
        onClick={() => setCreating(!creating)}>{creating ? 'Close the form' : 'New asset'}</button>}>
      {creating && (
        <div class="card">
          <h2>New asset</h2>
          <AssetForm sites={sites.data || [{ path: '/root' }]} initial={EMPTY} onSave={create} submitLabel="Create asset" />
        </div>
      )}
      <div class="toolbar">
        <Field label="Search assets" type="search" value={q} onInput={setQ} placeholder="name, host, site or ID" />
      </div>
      {assets.loading && !assets.data && <Loading />}
      <ErrorText error={assets.error} />
      {assets.data && (
        <Table caption="Assets" rows={rows} empty={needle ? 'No asset matches.' : 'No assets yet.'}
          columns={[
            { label: 'Name', render: (a) => <a href={`/assets/${a.id}`}>{a.name}</a> },
            { label: 'Host', render: (a) => `${a.host}:${a.port}` },
            { label: 'Site', key: 'site' },
            { label: 'Login', key: 'login_user' },
            { label: 'Route', key: 'route' },
            { label: 'Secrets', render: (a) => [a.has_password && 'password', a.has_key && 'key'].filter(Boolean).join(', ') || '–' },
          ]} />
      )}
    </Page>
  );
}

function Grants({ asset }) {
  const grants = useLoad(async () => (await list(`/assets/${asset.id}/grants`)).data, [asset.id]);
  const [kind, setKind] = useState('user');
  const [who, setWho] = useState('');
  const [role, setRole] = useState('viewer');
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      await api.post(`/assets/${asset.id}/grants`, { [kind]: who, role });
      setWho('');
      grants.reload();
    });
  };
  return (
    <div class="card">
      <h2>Grants</h2>
      <ErrorText error={grants.error} />
      {grants.data && (
        <Table caption="Grants" rows={grants.data} empty="Nobody has a grant on this asset."
          columns={[
            { label: 'Grantee', render: (g) => `${g.grantee} (${g.grantee_type})` },
            { label: 'Role', key: 'role' },
            { label: 'On', render: (g) => (g.target_type === 'site' ? `site ${g.target}` : 'this asset') },
            { label: '', render: (g) => g.target_type === 'asset' && (
              <Confirm label="Remove" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/assets/${asset.id}/grants/${g.id}`); grants.reload(); })} />) },
          ]} />
      )}
      <ErrorText error={del.error} />
      <form class="inline-form" onSubmit={submit} aria-label="Add a grant">
        <Select label="Grant to" value={kind} onInput={setKind} options={[['user', 'user'], ['group', 'group']]} />
        <Field label={kind === 'user' ? 'User name' : 'Group name'} value={who} onInput={setWho} required />
        <Select label="Role" value={role} onInput={setRole} options={['viewer', 'editor', 'owner']} />
        <button type="submit" disabled={add.busy}>Add grant</button>
      </form>
      <ErrorText error={add.error} />
    </div>
  );
}

function ConnectCommands({ asset, me }) {
  const data = useLoad(async () => {
    const [settings, assets] = await Promise.all([api.get('/settings'), list('/assets')]);
    return { settings: settings.data, assets: assets.data };
  }, [asset.id]);
  const [totp, setTotp] = useState('');
  if (data.error) return <div class="card"><h2>Connect</h2><ErrorText error={data.error} /></div>;
  if (!data.data) return <Loading />;
  const totpOk = /^[0-9]{6}$/.test(totp) ? totp : '';
  if (asset.protocol === 'rdp') {
    return (
      <div class="card">
        <h2>Connect as {me.name}</h2>
        <p class="muted">
          With mstsc, mRemoteNG or xfreerdp: the user name carries the asset
          {me.totp_enabled ? ' and your TOTP code (an RDP client cannot ask for it)' : ''}; the
          password is your Portcullis password.
        </p>
        {me.totp_enabled && (
          <div class="narrow">
            <Field label="TOTP code to put in the user name" value={totp} onInput={setTotp}
              inputMode="numeric" maxLength={6} pattern="[0-9]{6}" />
          </div>
        )}
        <RdpConnect asset={asset} me={me} data={data.data} totp={totpOk} />
      </div>
    );
  }
  const c = commands(me.name, asset, data.data.assets, data.data.settings, totpOk);
  return (
    <div class="card">
      <h2>Connect as {me.name}</h2>
      <p class="muted">
        With any OpenSSH client. {me.totp_enabled
          ? 'Your account has TOTP: you are asked for the code, or put it in the login below.'
          : 'The proxy asks for your Portcullis password (or uses your registered key).'}
      </p>
      <div class="narrow">
        <Field label="TOTP code to put in the login (optional)" value={totp} onInput={setTotp}
          inputMode="numeric" maxLength={6} pattern="[0-9]{6}" />
      </div>
      <CodeLine label="ssh" text={c.ssh} />
      <CodeLine label="scp" text={c.scp} />
      <CodeLine label="sftp" text={c.sftp} />
      {data.data.settings.ssh.host_key_fingerprint && (
        <p class="muted">The proxy's host key: <code>{data.data.settings.ssh.host_key_fingerprint}</code></p>
      )}
    </div>
  );
}

export function AssetDetail({ id, me }) {
  const asset = useLoad(async () => (await api.get(`/assets/${enc(id)}`)).data, [id]);
  const [editing, setEditing] = useState(false);
  const del = useAction();
  if (asset.loading && !asset.data) return <Page title="Asset"><Loading /></Page>;
  if (asset.error) return <Page title="Asset"><ErrorText error={asset.error} /><p><a href="/assets">All assets</a></p></Page>;
  const a = asset.data;

  const save = async (f) => {
    const body = {};
    if (f.name !== a.name) body.name = f.name;
    if (f.host !== a.host) body.host = f.host;
    if (Number(f.port) !== a.port) body.port = Number(f.port);
    if (f.login !== (a.login_user || '')) body.login = f.login || null;
    if (f.password) body.password = f.password;
    if (f.private_key) body.private_key = f.private_key;
    if (f.host_key_fingerprint !== (a.host_key_fingerprint || '')) body.host_key_fingerprint = f.host_key_fingerprint || null;
    if (f.route !== a.route) body.route = f.route || 'direct';
    await api.patch(`/assets/${a.id}`, body);
    setEditing(false);
    asset.reload();
  };

  return (
    <Page title={`Asset ${a.name}`} actions={<>
      <a class="button-link" href={`/assets/${a.id}/terminal?name=${encodeURIComponent(a.name)}`}>Terminal</a>
      <button type="button" onClick={() => setEditing(!editing)} aria-expanded={editing ? 'true' : 'false'}>
        {editing ? 'Close the form' : 'Edit'}</button>
      <Confirm label="Delete asset" busy={del.busy}
        onConfirm={() => del.run(async () => { await api.del(`/assets/${a.id}`); navigate('/assets'); })} />
    </>}>
      <p><a href="/assets">← All assets</a></p>
      <ErrorText error={del.error} />
      <dl class="facts">
        <dt>ID</dt><dd><code>{a.id}</code></dd>
        <dt>Host</dt><dd>{a.host}:{a.port}</dd>
        <dt>Site</dt><dd>{a.site}</dd>
        <dt>Protocol / route</dt><dd>{a.protocol} / {a.route}</dd>
        <dt>Login on the target</dt><dd>{fmt(a.login_user)}</dd>
        <dt>Vaulted</dt><dd>{[a.has_password && 'password', a.has_key && 'private key'].filter(Boolean).join(', ') || 'nothing'}</dd>
        <dt>Host key</dt><dd>{a.host_key_fingerprint ? <code>{a.host_key_fingerprint}</code> : 'pinned on first use'}</dd>
        <dt>Created</dt><dd>{fmtTime(a.created_at)}</dd>
      </dl>
      {editing && (
        <div class="card">
          <h2>Edit</h2>
          <AssetForm initial={{ id: a.id, name: a.name, host: a.host, port: String(a.port), site: a.site,
            login: a.login_user || '', password: '', private_key: '', host_key_fingerprint: a.host_key_fingerprint || '', route: a.route }}
          onSave={save} submitLabel="Save changes" />
        </div>
      )}
      <ConnectCommands asset={a} me={me} />
      <Grants asset={a} />
    </Page>
  );
}
