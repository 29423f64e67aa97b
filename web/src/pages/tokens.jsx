// API tokens: create (the token is shown once), disable or enable, delete.
import { useState } from 'preact/hooks';
import { api, list } from '../api.js';
import { CodeLine, Confirm, ErrorText, Field, Loading, Page, Table, fmt, fmtTime, useAction, useLoad } from '../ui.jsx';

export function Tokens({ me }) {
  const tokens = useLoad(async () => (await list('/api-tokens')).data);
  const [f, setF] = useState({ description: '', expires_in: '30d', user: '', filter_paths: '', filter_cidrs: '' });
  const [made, setMade] = useState(null);
  const add = useAction();
  const act = useAction();
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const split = (s) => s.split(/[\s,]+/).filter(Boolean);
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const body = { expires_in: f.expires_in || '30d' };
      if (f.description) body.description = f.description;
      if (f.user) body.user = f.user;
      if (f.filter_paths.trim()) body.filter_paths = split(f.filter_paths);
      if (f.filter_cidrs.trim()) body.filter_cidrs = split(f.filter_cidrs);
      const doc = await api.post('/api-tokens', body);
      setMade(doc.data);
      setF({ ...f, description: '', user: '', filter_paths: '', filter_cidrs: '' });
      tokens.reload();
    });
  };
  return (
    <Page title="API tokens">
      <form class="grid-form card" onSubmit={submit} aria-label="New API token">
        <Field label="Description" value={f.description} onInput={set('description')} />
        <Field label="Expires in" value={f.expires_in} onInput={set('expires_in')} hint="30d, 12h, 15m or 3600s" required />
        <Field label="For user (administrators; empty: you)" value={f.user} onInput={set('user')} placeholder={me.name} />
        <Field label="Only these paths (optional)" value={f.filter_paths} onInput={set('filter_paths')} placeholder="/api/v1/assets" />
        <Field label="Only from these networks (optional)" value={f.filter_cidrs} onInput={set('filter_cidrs')} placeholder="10.0.0.0/8" />
        <ErrorText error={add.error} />
        <div class="form-actions"><button type="submit" class="primary" disabled={add.busy}>Create token</button></div>
      </form>
      {made && (
        <div class="card notice" role="status">
          <p><strong>Your new token.</strong> Copy it now: it is shown only once.</p>
          <CodeLine label="Token" text={made.token} />
          <button type="button" class="small" onClick={() => setMade(null)}>I have copied it</button>
        </div>
      )}
      {tokens.loading && !tokens.data && <Loading />}
      <ErrorText error={tokens.error || act.error} />
      {tokens.data && (
        <Table caption="API tokens" rows={tokens.data} empty="No API tokens."
          columns={[
            { label: 'Description', key: 'description' },
            { label: 'User', render: (t) => t.user || t.user_name || t.user_id },
            { label: 'State', render: (t) => (t.enabled ? 'enabled' : 'disabled') },
            { label: 'Expires', render: (t) => fmtTime(t.expires_at) },
            { label: 'Filters', render: (t) => fmt([...((t.filter && t.filter.paths) || []), ...((t.filter && t.filter.cidrs) || [])]) },
            { label: '', render: (t) => (
              <span class="row-actions">
                <button type="button" class="small" disabled={act.busy}
                  onClick={() => act.run(async () => { await api.patch(`/api-tokens/${t.id}`, { enabled: !t.enabled }); tokens.reload(); })}>
                  {t.enabled ? 'Disable' : 'Enable'}</button>
                <Confirm label="Delete" busy={act.busy}
                  onConfirm={() => act.run(async () => { await api.del(`/api-tokens/${t.id}`); tokens.reload(); })} />
              </span>) },
          ]} />
      )}
    </Page>
  );
}
