// Sites: the tree assets and site roles hang on (/root and below).
import { useState } from 'preact/hooks';
import { api, list } from '../api.js';
import { Confirm, ErrorText, Field, Loading, Page, Table, useAction, useLoad } from '../ui.jsx';

export function Sites() {
  const sites = useLoad(async () => (await list('/sites', { sort: 'path' })).data);
  const [path, setPath] = useState('/root/');
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      await api.post('/sites', { path });
      setPath('/root/');
      sites.reload();
    });
  };
  return (
    <Page title="Sites">
      <form class="inline-form card" onSubmit={submit} aria-label="New site">
        <Field label="New site path" value={path} onInput={setPath} required
          hint="Missing parents are made, e.g. /root/Europe/DevOps." />
        <button type="submit" class="primary" disabled={add.busy}>Add site</button>
      </form>
      <ErrorText error={add.error} />
      {sites.loading && !sites.data && <Loading />}
      <ErrorText error={sites.error} />
      <ErrorText error={del.error} />
      {sites.data && (
        <Table caption="Sites" rows={sites.data}
          columns={[
            { label: 'Path', key: 'path' },
            { label: 'ID', render: (s) => <code>{s.id}</code> },
            { label: '', render: (s) => s.path !== '/root' && (
              <Confirm label="Delete" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/sites/${s.id}`); sites.reload(); })} />) },
          ]} />
      )}
    </Page>
  );
}
