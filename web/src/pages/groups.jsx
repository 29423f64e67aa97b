// Groups and their members.
import { useState } from 'preact/hooks';
import { api, enc, list } from '../api.js';
import { Confirm, ErrorText, Field, Loading, Page, Table, useAction, useLoad } from '../ui.jsx';

function Members({ group, onChange }) {
  const [user, setUser] = useState('');
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      await api.post(`/groups/${enc(group.name)}/members`, { user });
      setUser('');
      onChange();
    });
  };
  return (
    <div>
      <ul class="chips" aria-label={`Members of ${group.name}`}>
        {(group.members || []).map((m) => (
          <li key={m}>{m}{' '}
            <button type="button" class="small" aria-label={`Remove ${m} from ${group.name}`} disabled={del.busy}
              onClick={() => del.run(async () => { await api.del(`/groups/${enc(group.name)}/members/${enc(m)}`); onChange(); })}>×</button>
          </li>
        ))}
      </ul>
      <form class="inline-form" onSubmit={submit} aria-label={`Add a member to ${group.name}`}>
        <Field label="Add member (user name)" value={user} onInput={setUser} required />
        <button type="submit" class="small" disabled={add.busy}>Add</button>
      </form>
      <ErrorText error={add.error || del.error} />
    </div>
  );
}

export function Groups() {
  const groups = useLoad(async () => (await list('/groups', { sort: 'name' })).data);
  const [name, setName] = useState('');
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      await api.post('/groups', { name });
      setName('');
      groups.reload();
    });
  };
  return (
    <Page title="Groups">
      <form class="inline-form card" onSubmit={submit} aria-label="New group">
        <Field label="New group name" value={name} onInput={setName} required />
        <button type="submit" class="primary" disabled={add.busy}>Add group</button>
      </form>
      <ErrorText error={add.error} />
      {groups.loading && !groups.data && <Loading />}
      <ErrorText error={groups.error || del.error} />
      {groups.data && (
        <Table caption="Groups" rows={groups.data}
          columns={[
            { label: 'Group', key: 'name' },
            { label: 'Members', render: (g) => <Members group={g} onChange={groups.reload} /> },
            { label: '', render: (g) => (
              <Confirm label="Delete" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/groups/${enc(g.name)}`); groups.reload(); })} />) },
          ]} />
      )}
    </Page>
  );
}
