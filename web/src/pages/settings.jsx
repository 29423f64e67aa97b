// Settings: where the proxy listens and the fingerprints to check, and
// who the signed-in user is.
import { api } from '../api.js';
import { ErrorText, Loading, Page, CodeLine, fmt, fmtTime, useLoad } from '../ui.jsx';
import { proxyHost } from './assets.jsx';

export function Settings({ me }) {
  const st = useLoad(async () => (await api.get('/settings')).data);
  return (
    <Page title="Settings">
      {st.loading && !st.data && <Loading />}
      <ErrorText error={st.error} />
      {st.data && (
        <>
          <div class="card">
            <h2>SSH proxy</h2>
            <dl class="facts">
              <dt>Listens on</dt><dd>{st.data.ssh.listen} port {st.data.ssh.port}</dd>
              <dt>Host key fingerprint</dt><dd><code>{fmt(st.data.ssh.host_key_fingerprint)}</code></dd>
            </dl>
            <CodeLine label="Check it" text={`ssh-keyscan -p ${st.data.ssh.port} ${proxyHost(st.data)} | ssh-keygen -lf -`} />
          </div>
          <div class="card">
            <h2>Web and API</h2>
            <dl class="facts">
              <dt>URL</dt><dd><code>{st.data.http.url}</code></dd>
              <dt>TLS</dt><dd>{st.data.http.tls ? 'yes' : 'no (plain HTTP on loopback)'}</dd>
              {st.data.http.tls_fingerprint && <><dt>Certificate fingerprint</dt><dd><code>{st.data.http.tls_fingerprint}</code></dd></>}
            </dl>
          </div>
        </>
      )}
      <div class="card">
        <h2>You</h2>
        <dl class="facts">
          <dt>User</dt><dd>{me.name}</dd>
          <dt>TOTP</dt><dd>{me.totp_enabled ? 'enabled' : 'not enabled'}</dd>
          <dt>Groups</dt><dd>{fmt(me.groups)}</dd>
          <dt>Site roles</dt><dd>{(me.roles || []).map((r) => `${r.role} on ${r.site}`).join(', ') || '–'}</dd>
          <dt>Session ends</dt><dd>{fmtTime(me.token && me.token.expires_at)}</dd>
        </dl>
      </div>
    </Page>
  );
}
