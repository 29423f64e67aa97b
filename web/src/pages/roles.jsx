// Site roles: who may manage what (administrator, configuration-manager,
// service, user), granted on a site and inherited by its sub-sites.
import { useState } from 'preact/hooks';
import { api, list } from '../api.js';
import { Confirm, ErrorText, Field, Loading, Page, Select, Table, useAction, useLoad } from '../ui.jsx';

const ROLES = ['administrator', 'configuration-manager', 'service', 'user'];

export function Roles() {
  const roles = useLoad(async () => (await list('/site-roles')).data);
  const sites = useLoad(async () => (await list('/sites', { sort: 'path' })).data);
  const [f, setF] = useState({ site: '/root', kind: 'user', who: '', role: 'configuration-manager' });
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      await api.post('/site-roles', { site: f.site, [f.kind]: f.who, role: f.role });
      setF({ ...f, who: '' });
      roles.reload();
    });
  };
  return (
    <Page title="Site roles">
      <form class="inline-form card" onSubmit={submit} aria-label="Grant a site role">
        <Select label="Site" value={f.site} onInput={set('site')} options={(sites.data || [{ path: '/root' }]).map((s) => s.path)} />
        <Select label="Grant to" value={f.kind} onInput={set('kind')} options={['user', 'group']} />
        <Field label={f.kind === 'user' ? 'User name' : 'Group name'} value={f.who} onInput={set('who')} required />
        <Select label="Role" value={f.role} onInput={set('role')} options={ROLES} />
        <button type="submit" class="primary" disabled={add.busy}>Grant role</button>
      </form>
      <ErrorText error={add.error} />
      {roles.loading && !roles.data && <Loading />}
      <ErrorText error={roles.error || del.error} />
      {roles.data && (
        <Table caption="Site roles" rows={roles.data}
          columns={[
            { label: 'Site', key: 'site' },
            { label: 'Grantee', render: (r) => `${r.grantee} (${r.grantee_type})` },
            { label: 'Role', key: 'role' },
            { label: '', render: (r) => (
              <Confirm label="Revoke" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/site-roles/${r.id}`); roles.reload(); })} />) },
          ]} />
      )}
    </Page>
  );
}
