// The audit log (hash-chained; `portcullis audit verify` checks it).
import { useState } from 'preact/hooks';
import { list } from '../api.js';
import { ErrorText, Field, Loading, Page, Table, fmtTime, useLoad } from '../ui.jsx';

const PAGE = 100;

export function Audit() {
  const [offset, setOffset] = useState(0);
  const [actor, setActor] = useState('');
  const [applied, setApplied] = useState('');
  const [q, setQ] = useState('');
  const events = useLoad(async () => list('/audit', { limit: PAGE, offset, sort: '-seq', filter: { actor: applied } }), [offset, applied]);
  const needle = q.trim().toLowerCase();
  const rows = events.data ? events.data.data.filter((e) => !needle ||
    [e.action, e.target, e.detail, e.source].some((v) => v && v.toLowerCase().includes(needle))) : [];
  const total = events.data ? events.data.meta.total : 0;
  return (
    <Page title="Audit log">
      <form class="inline-form" onSubmit={(ev) => { ev.preventDefault(); setOffset(0); setApplied(actor.trim()); }}>
        <Field label="Actor (exact)" value={actor} onInput={setActor} placeholder="admin, cli:root, system" />
        <button type="submit">Filter</button>
        <Field label="Search this page" type="search" value={q} onInput={setQ} placeholder="action, target, detail" />
      </form>
      {events.loading && !events.data && <Loading />}
      <ErrorText error={events.error} />
      {events.data && (
        <>
          <Table caption="Audit events" rows={rows} rowKey="seq"
            columns={[
              { label: '#', key: 'seq' },
              { label: 'Time', render: (e) => fmtTime(e.time) },
              { label: 'Actor', key: 'actor' },
              { label: 'Source', key: 'source' },
              { label: 'Action', key: 'action' },
              { label: 'Target', key: 'target' },
              { label: 'Detail', key: 'detail' },
            ]} />
          <div class="pager">
            <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>Newer</button>
            <span>{total ? `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}` : ''}</span>
            <button type="button" disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>Older</button>
          </div>
        </>
      )}
    </Page>
  );
}
